"""The daemon in-process: readiness, query through it, reload (good and bad), clean stop with flush."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from multicloud_collector.config import load_config
from multicloud_collector.daemon import Daemon
from multicloud_collector.demo.config import demo_config
from multicloud_collector.demo.fleet import FleetSimulator
from multicloud_collector.store_query import QueryError


@pytest.fixture
async def fleet() -> AsyncIterator[FleetSimulator]:
    async with FleetSimulator(seed=3, hosts_per_provider=1, providers=("vultr", "lambda")) as f:
        yield f


def write(path: Path, cfg: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


async def wait_for(pred: object, deadline_s: float = 30.0) -> None:
    """Poll a condition the daemon exposes no event for (bounded; not a sleep-for-sync)."""
    async with asyncio.timeout(deadline_s):
        while not pred():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_daemon_lifecycle_reload_and_flush(fleet: FleetSimulator, tmp_path: Path) -> None:
    cfg = demo_config(fleet, tmp_path, listen="127.0.0.1:0", interval="1s")
    path = write(tmp_path / "mcc.yaml", cfg)
    daemon = Daemon(load_config(path, {}))
    assert daemon.readiness()[0] is False  # nothing open yet
    ready = asyncio.Event()
    task = asyncio.create_task(daemon.run(install_signals=False, on_ready=lambda _d: ready.set()))
    await asyncio.wait_for(ready.wait(), 60)
    assert daemon.server is not None and daemon.scheduler is not None
    n_targets = len(daemon.scheduler.targets)
    assert n_targets == 2 * len(fleet.hosts) + 2  # dcgm + node per host, one PromQL target per account

    await wait_for(lambda: len(daemon.metrics.last_reports) == n_targets)
    ok, info = daemon.readiness()
    assert ok and info["sink"] == "writing"
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{daemon.server.port}/readyz") as r:
        assert r.status == 200

    with pytest.raises(QueryError):
        await daemon.query("DROP TABLE mcc.samples", "TSV")

    # A broken file on reload: keep running with the old config, say so in readiness.
    path.write_text("collector: {interval: nonsense}\n")
    assert await daemon.reload() is False
    ok, info = daemon.readiness()
    assert "reload_error" in info and "collector.interval" in info["reload_error"]
    assert len(daemon.scheduler.targets) == n_targets

    # A valid reload with one account fewer: its targets stop, the rest keep going.
    cfg["accounts"] = cfg["accounts"][:1]  # type: ignore[index]
    write(path, cfg)
    assert await daemon.reload() is True
    assert "reload_error" not in daemon.readiness()[1]
    remaining = len(daemon.scheduler.targets)
    assert 0 < remaining < n_targets

    daemon.stop.set()
    assert await asyncio.wait_for(task, 60) == 0

    # Everything scraped before the stop was flushed: every report the daemon saw is in scrape_log.
    reopened = Daemon(load_config(path, {}))
    from multicloud_collector.runtime import make_sink

    sink = make_sink(reopened.config, reopened.metrics)
    await sink.start()
    try:
        raw = await sink.query("SELECT count() FROM mcc.scrape_log", "TSV")
    finally:
        await sink.close()
    # One scrape_log row per finished scrape, as counted by the self-metrics.
    scrapes = sum(
        float(line.rpartition(" ")[2])
        for line in daemon.metrics.render().decode().splitlines()
        if line.startswith("mcc_scrapes_total{")
    )
    assert int(raw.strip()) == scrapes > 0


async def test_reload_starts_api_collection_for_an_account_that_gained_credentials(
    fleet: FleetSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakes.server import FakeServer
    from fakes.vultr import VultrFake

    token = "vultr-reload-token-1234"
    async with FakeServer(VultrFake(token=token)) as api:
        cfg = demo_config(fleet, tmp_path, listen="127.0.0.1:0", interval="1s")
        cfg["accounts"] = [a for a in cfg["accounts"] if a["provider"] == "vultr"][:1]  # type: ignore[index]
        account = cfg["accounts"][0]  # type: ignore[index]
        account.pop("api", None)
        cfg["providers"]["vultr"]["adapter"] = "vultr"  # type: ignore[index]
        path = write(tmp_path / "mcc.yaml", cfg)
        daemon = Daemon(load_config(path, {}))
        ready = asyncio.Event()
        task = asyncio.create_task(daemon.run(install_signals=False, on_ready=lambda _d: ready.set()))
        await asyncio.wait_for(ready.wait(), 60)
        assert daemon.providers is not None and daemon.providers.accounts == []

        account["api"] = {"api_key": "${VULTR_TEST_KEY}", "base_url": api.url + "/v2"}
        write(path, cfg)
        monkeypatch.setenv("VULTR_TEST_KEY", token)  # a reload reads the process environment
        assert await daemon.reload() is True
        assert daemon.providers.accounts == [account["id"]]

        async def instances() -> int:
            raw = await daemon.query("SELECT count() FROM mcc.instances", "TSV")
            return int(raw.strip())

        async with asyncio.timeout(30):
            while await instances() == 0:  # noqa: ASYNC110 - rows appear after the job and a batch flush
                await asyncio.sleep(0.2)
        daemon.stop.set()
        assert await asyncio.wait_for(task, 60) == 0
