"""Against real binaries: node_exporter scraped directly, and Prometheus queried over its API.

Prometheus is configured (generated prometheus.yml in tmp) to scrape the same node_exporter and a
local server with the DCGM fixture; the fixture waits until it has data by polling its API.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from support.services import Process, StaticServer

from multicloud_collector.model import ScrapeOutput, ScrapeStatus, TargetContext
from multicloud_collector.observe import NullObserver
from multicloud_collector.scheduler import Scheduler
from multicloud_collector.scrape import builtin_scrapers
from multicloud_collector.scrape.base import PromQuery, Target

pytestmark = pytest.mark.integration


def target(url: str, kind: str, *queries: tuple[str, str], interval: float = 5.0) -> Target:
    ctx = TargetContext("cust", "onprem", "acct", f"acct/{kind}/{url}", kind, kind)
    return Target(
        ctx=ctx,
        url=url,
        interval=interval,
        timeout=min(3.0, interval * 0.8),
        queries=tuple(PromQuery(n, e) for n, e in queries),
        extra_labels=(("customer", "cust"),),
    )


def values(out: ScrapeOutput) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.metric, dict(s.labels), v) for b in out.blocks for s, v in zip(b.series, b.values, strict=True)
    ]


async def test_scrape_real_node_exporter(node_exporter_proc: Process, session: aiohttp.ClientSession) -> None:
    scraper = builtin_scrapers()["node"]
    out = await scraper.scrape(target(node_exporter_proc.url + "/metrics", "node"), session)
    assert out.report.status is ScrapeStatus.OK, out.report.error
    got = values(out)
    metrics = {m for m, _, _ in got}
    assert {"node_load1", "node_cpu_seconds_total", "node_memory_MemTotal_bytes", "up"} <= metrics
    assert ("up", {"customer": "cust"}, 1.0) in got
    cpu = [labels for m, labels, _ in got if m == "node_cpu_seconds_total"]
    assert all({"cpu", "mode", "customer"} <= set(labels) for labels in cpu)
    assert out.report.samples > 50


async def test_dcgm_scrape_of_fixture_server(
    dcgm_static: StaticServer, session: aiohttp.ClientSession
) -> None:
    out = await builtin_scrapers()["dcgm"].scrape(target(dcgm_static.url + "/metrics", "dcgm"), session)
    assert out.report.status is ScrapeStatus.OK
    assert len(out.gpus) == 8


async def test_promql_against_real_prometheus(
    prometheus_proc: Process, session: aiohttp.ClientSession
) -> None:
    t = target(
        prometheus_proc.url,
        "promql",
        ("up", "up"),
        ("targets", "scalar(count(up))"),
        ("gpu_util", "DCGM_FI_DEV_GPU_UTIL"),
        ("recent_up", 'up{job="node"}[10s]'),
    )
    out = await builtin_scrapers()["promql"].scrape(t, session)
    assert out.report.status is ScrapeStatus.OK, out.report.error
    got = values(out)
    ups = {labels["job"]: v for m, labels, v in got if m == "up" and labels["query"] == "up"}
    assert ups == {"node": 1.0, "dcgm": 1.0}
    assert ("targets", {"query": "targets", "customer": "cust"}, 2.0) in got
    gpu = [labels for m, labels, _ in got if m == "DCGM_FI_DEV_GPU_UTIL"]
    assert len(gpu) == 8 and all(lbl["query"] == "gpu_util" for lbl in gpu)
    matrix = [v for m, labels, v in got if labels.get("query") == "recent_up"]
    assert len(matrix) >= 1 and set(matrix) == {1.0}


async def test_promql_error_from_real_prometheus(
    prometheus_proc: Process, session: aiohttp.ClientSession
) -> None:
    t = target(prometheus_proc.url, "promql", ("broken", "sum(rate(up[5m]"), ("up", "up"))
    out = await builtin_scrapers()["promql"].scrape(t, session)
    assert out.report.status is ScrapeStatus.ERROR
    assert "'broken'" in out.report.error and "bad_data" in out.report.error
    assert any(m == "up" for m, _, _ in values(out))  # the other query still delivered


@pytest.mark.slow
async def test_scheduler_runs_real_targets(
    node_exporter_proc: Process, prometheus_proc: Process, session: aiohttp.ClientSession
) -> None:
    targets = [
        target(node_exporter_proc.url + "/metrics", "node", interval=0.5),
        target(prometheus_proc.url, "promql", ("up", "up"), interval=0.5),
    ]
    seen: list[ScrapeOutput] = []
    changed = asyncio.Event()

    async def on_output(out: ScrapeOutput) -> None:
        seen.append(out)
        changed.set()

    def done() -> bool:
        kinds = [o.report.ctx.kind for o in seen]
        return kinds.count("node") >= 2 and kinds.count("promql") >= 2

    sched = Scheduler(
        targets, session, builtin_scrapers(), on_output, max_concurrency=2, observer=NullObserver()
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop, grace=2.0))
    try:
        async with asyncio.timeout(20):
            while not done():
                changed.clear()
                await changed.wait()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert all(o.report.status is ScrapeStatus.OK for o in seen), [o.report.error for o in seen]
