"""ExpositionScraper against loopback servers serving real exporter output."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from support.services import AppServers, fixture_bytes

from multicloud_collector.model import ScrapeLimits, ScrapeStatus, TargetContext
from multicloud_collector.parse.exposition import SeriesCache, parse_exposition
from multicloud_collector.scrape.base import Target, is_transient
from multicloud_collector.scrape.exposition import THREAD_PARSE_BYTES, ExpositionScraper
from multicloud_collector.secrets import Secret

NODE = fixture_bytes("node_exporter_1.5.prom")
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"


def target(url: str, *, kind: str = "node", **kw: object) -> Target:
    ctx = TargetContext("cust-1", "lambda", "acct-1", f"acct-1/{kind}/{url}", kind, "exposition")
    return Target(ctx=ctx, url=url, interval=5.0, timeout=2.0, **kw)  # type: ignore[arg-type]


async def serve_body(app_servers: AppServers, body: bytes, ctype: str = TEXT_CT, status: int = 200) -> str:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, headers={"Content-Type": ctype})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return await app_servers.start(app) + "/metrics"


def synthetic(out_block_series: list[object], values: list[float]) -> dict[str, float]:
    return {
        s.metric: v
        for s, v in zip(out_block_series, values, strict=True)
        if s.metric.startswith(("up", "scrape_"))
    }  # type: ignore[attr-defined]


async def test_scrapes_node_exporter_fixture(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    url = await serve_body(app_servers, NODE)
    scraper = ExpositionScraper("node")
    t = target(url, extra_labels=(("customer", "cust-1"),))
    out = await scraper.scrape(t, session)
    expected = parse_exposition(NODE, content_type=TEXT_CT, limits=ScrapeLimits(), cache=SeriesCache("x"))
    assert out.report.status is ScrapeStatus.OK, out.report.error
    assert out.report.bytes == len(NODE)
    assert len(out.blocks) == 1
    block = out.blocks[0]
    synth = synthetic(block.series, block.values)
    assert synth["up"] == 1.0
    assert synth["scrape_samples_scraped"] == len(expected.values)
    assert synth["scrape_body_bytes"] == len(NODE)
    assert synth["scrape_duration_seconds"] > 0
    assert out.report.samples + out.report.dropped == len(expected.values)
    assert len(block.flags) == len(block.values)
    assert all(dict(s.labels)["customer"] == "cust-1" for s in block.series)
    assert {s.metric for s in block.series} >= {"node_load1", "node_cpu_seconds_total"}
    # The second scrape reuses the per-target cache: identical Series objects.
    again = await scraper.scrape(t, session)
    first_ids = [s.series_id for s in block.series]
    assert [s.series_id for s in again.blocks[0].series] == first_ids
    assert again.blocks[0].series[0] is block.series[0]


async def test_explicit_timestamps_get_their_own_block(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    body = b"a 1\nb 2 1700000000000\nc 3 1700000000000\nd 4 1700000001000\n"
    url = await serve_body(app_servers, body)
    out = await ExpositionScraper().scrape(target(url, kind="generic"), session)
    assert out.report.status is ScrapeStatus.OK
    main, *rest = out.blocks
    assert [s.metric for s in main.series][:1] == ["a"]
    assert [(b.ts_ms, [s.metric for s in b.series]) for b in rest] == [
        (1700000000000, ["b", "c"]),
        (1700000001000, ["d"]),
    ]


async def test_failure_yields_up_zero_and_duration_only(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    url = await serve_body(app_servers, b"oops", status=503)
    out = await ExpositionScraper().scrape(target(url), session)
    assert out.report.status is ScrapeStatus.ERROR
    assert out.report.error_reason == "http_status"
    assert url.replace("/metrics", "") in out.report.error
    assert is_transient(out.report)
    synth = synthetic(out.blocks[0].series, out.blocks[0].values)
    assert synth.keys() == {"up", "scrape_duration_seconds"}
    assert synth["up"] == 0.0


async def test_parse_error_fails_whole_scrape(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    url = await serve_body(app_servers, b"good 1\n7&-\n")
    out = await ExpositionScraper().scrape(target(url), session)
    assert out.report.status is ScrapeStatus.ERROR
    assert out.report.error_reason == "parse"
    assert "line 2" in out.report.error and "127.0.0.1" in out.report.error
    assert not is_transient(out.report)
    assert [s.metric for s in out.blocks[0].series] == ["up", "scrape_duration_seconds"]  # no partial rows


async def test_large_body_is_parsed_off_loop(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    body = b"".join(b'big_metric{i="%d"} %d\n' % (i, i) for i in range(20000))
    assert len(body) > THREAD_PARSE_BYTES
    url = await serve_body(app_servers, body)
    out = await ExpositionScraper().scrape(target(url), session)
    assert out.report.status is ScrapeStatus.OK
    assert out.report.samples == 20000


async def test_secret_header_is_sent_but_never_reported(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    auth: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        auth.append(request.headers.get("Authorization", ""))
        return web.Response(status=401, text="bad token Bearer s3cr3t-canary-token")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    url = await app_servers.start(app) + "/metrics"
    t = target(url, headers=(("Authorization", Secret("Bearer s3cr3t-canary-token")),))
    out = await ExpositionScraper().scrape(t, session)
    assert auth == ["Bearer s3cr3t-canary-token"]
    assert out.report.error_reason == "http_status"
    assert "s3cr3t-canary-token" not in out.report.error
    assert "s3cr3t" not in repr(t)


async def test_extra_labels_change_rebuilds_cache_and_forget(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    url = await serve_body(app_servers, b"m 1\n")
    scraper = ExpositionScraper()
    t1 = target(url, extra_labels=(("env", "a"),))
    t2 = target(url, extra_labels=(("env", "b"),))
    o1 = await scraper.scrape(t1, session)
    o2 = await scraper.scrape(t2, session)
    assert dict(o1.blocks[0].series[0].labels)["env"] == "a"
    assert dict(o2.blocks[0].series[0].labels)["env"] == "b"
    assert o1.blocks[0].series[0].series_id != o2.blocks[0].series[0].series_id
    scraper.forget(t1.id)
    assert t1.id not in scraper._caches
