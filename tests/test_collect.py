"""build_targets (config -> targets, sharding) and collect_all (one account, concurrently)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from support.services import AppServers, fixture_bytes, free_port

from multicloud_collector.collect import build_targets, collect_all, in_shard, scrape_one, target_id
from multicloud_collector.config.model import (
    AccountConfig,
    CollectorConfig,
    Config,
    ExporterConfig,
    PrometheusConfig,
    PromQueryConfig,
    ProviderSpec,
    ShardConfig,
)
from multicloud_collector.model import ScrapeStatus
from multicloud_collector.scrape import builtin_scrapers
from multicloud_collector.secrets import Secret

PROVIDERS = {"lambda": ProviderSpec(name="lambda"), "off": ProviderSpec(name="off", enabled=False)}


def account(aid: str = "acct-1", provider: str = "lambda", **kw: object) -> AccountConfig:
    return AccountConfig(id=aid, customer="cust-1", provider=provider, **kw)  # type: ignore[arg-type]


def config(*accounts: AccountConfig, **collector: object) -> Config:
    return Config(collector=CollectorConfig(**collector), providers=PROVIDERS, accounts=accounts)  # type: ignore[arg-type]


def test_one_target_per_exporter_and_prometheus_block() -> None:
    acct = account(
        interval=30.0,
        labels={"team": "ml"},
        exporters=(
            ExporterConfig(url="http://10.0.0.5:9100/metrics", kind="node", labels={"rack": "r1"}),
            ExporterConfig(
                url="http://10.0.0.5:9400/metrics", kind="dcgm", interval=10.0, scrape_timeout=20.0
            ),
            ExporterConfig(url="http://10.0.0.6:9100/metrics", kind="node", enabled=False),
        ),
        prometheus=PrometheusConfig(
            url="http://10.0.0.9:9090",
            queries=(PromQueryConfig("gpu_util", "avg(DCGM_FI_DEV_GPU_UTIL)"),),
            bearer_token=Secret("prom-token-canary"),
        ),
    )
    targets = build_targets(config(acct), builtin_scrapers())
    by_kind = {t.ctx.kind: t for t in targets}
    assert sorted(by_kind) == ["dcgm", "node", "promql"]
    node, dcgm, prom = by_kind["node"], by_kind["dcgm"], by_kind["promql"]
    assert node.id == "acct-1/node/http://10.0.0.5:9100/metrics"
    assert node.interval == 30.0 and node.timeout == 10.0
    assert dict(node.extra_labels) == {"team": "ml", "rack": "r1"}
    assert node.ctx.source == "exposition" and dcgm.ctx.source == "dcgm"
    assert dcgm.interval == 10.0 and dcgm.timeout < dcgm.interval  # a too-long timeout is clamped
    assert prom.queries[0].name == "gpu_util" and prom.queries[0].expr.startswith("avg(")
    assert prom.request_headers()["Authorization"] == "Bearer prom-token-canary"
    assert "prom-token-canary" not in repr(prom) and "prom-token-canary" not in prom.id


def test_disabled_accounts_providers_and_filters() -> None:
    exp = (ExporterConfig(url="http://10.0.0.5:9100/metrics", kind="node"),)
    cfg = config(
        account("a", exporters=exp),
        account("b", exporters=exp, enabled=False),
        account("c", provider="off", exporters=exp),
        account("d", exporters=exp),
    )
    assert {t.ctx.account for t in build_targets(cfg)} == {"a", "d"}
    assert {t.ctx.account for t in build_targets(cfg, accounts=["d"])} == {"d"}


def test_unknown_kind_is_skipped_and_duplicates_kept_once() -> None:
    cfg = config(
        account(
            exporters=(
                ExporterConfig(url="http://10.0.0.5:9100/metrics", kind="node"),
                ExporterConfig(url="http://10.0.0.5:9100/metrics", kind="node"),
                ExporterConfig(url="http://10.0.0.5:9999/metrics", kind="nvml-plugin"),
            ),
            prometheus=PrometheusConfig(url="http://p:9090", queries=(PromQueryConfig("q", "up"),)),
        )
    )
    scrapers = {"node": builtin_scrapers()["node"]}
    assert [t.ctx.kind for t in build_targets(cfg, scrapers)] == ["node"]
    assert sorted(t.ctx.kind for t in build_targets(cfg)) == ["node", "nvml-plugin", "promql"]


def test_target_id_hides_credentials_in_url() -> None:
    tid = target_id("a", "generic", "http://user:pw-canary@h:1/m?token=tok-canary")
    assert "pw-canary" not in tid and "tok-canary" not in tid
    assert tid.startswith("a/generic/http://h:1/m")


def test_shards_partition_the_targets() -> None:
    exporters = tuple(
        ExporterConfig(url=f"http://10.0.{i // 200}.{i % 200}:9100/metrics", kind="node") for i in range(300)
    )
    acct = account(exporters=exporters)
    all_ids = {t.id for t in build_targets(config(acct))}
    shards = [{t.id for t in build_targets(config(acct, shard=ShardConfig(i, 3)))} for i in range(3)]
    assert set().union(*shards) == all_ids
    assert sum(len(s) for s in shards) == len(all_ids)
    assert all(len(s) > 50 for s in shards)  # roughly even
    assert in_shard("x", 0, 1)


async def test_collect_all_aggregates_errors(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    node = fixture_bytes("node_exporter_1.5.prom")

    async def good(request: web.Request) -> web.Response:
        return web.Response(body=node, content_type="text/plain")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/good", good)
    app.router.add_get("/broken", broken)
    base = await app_servers.start(app)
    cfg = config(
        account(
            exporters=(
                ExporterConfig(url=base + "/good", kind="node"),
                ExporterConfig(url=base + "/broken", kind="generic"),
                ExporterConfig(url=f"http://127.0.0.1:{free_port()}/metrics", kind="dcgm"),
            )
        ),
        account("other", exporters=(ExporterConfig(url=base + "/good", kind="node"),)),
    )
    scrapers = builtin_scrapers()
    targets = build_targets(cfg, scrapers)
    result = await collect_all("acct-1", targets, session, scrapers)
    assert result.account == "acct-1" and result.provider == "lambda"
    assert len(result.outputs) == 3  # the other account's target is not scraped
    assert not result.ok
    assert set(result.errors) == {f"acct-1/generic/{base}/broken", t_id(cfg, "dcgm")}
    good_out = next(o for o in result.outputs if o.report.ctx.kind == "node")
    assert good_out.report.status is ScrapeStatus.OK and good_out.report.samples > 100
    empty = await collect_all("nobody", targets, session, scrapers)
    assert empty.outputs == [] and empty.ok


def t_id(cfg: Config, kind: str) -> str:
    return next(t.id for t in build_targets(cfg) if t.ctx.kind == kind)


async def test_scrape_one_without_scraper_reports_config_error(session: aiohttp.ClientSession) -> None:
    cfg = config(account(exporters=(ExporterConfig(url="http://127.0.0.1:1/m", kind="nvml-plugin"),)))
    (t,) = build_targets(cfg)
    out = await scrape_one(t, session, builtin_scrapers())
    assert out.report.error_reason == "config"
    assert "nvml-plugin" in out.report.error
