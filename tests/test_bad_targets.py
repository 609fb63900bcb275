"""Hostile and broken targets in one collect_all: each fails alone, with the right reason.

Every misbehaviour is a real aiohttp handler on 127.0.0.1; the healthy targets scraped in the
same ``collect_all`` must come back complete.
"""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from support.services import AppServers, fixture_bytes

from multicloud_collector.collect import collect_all
from multicloud_collector.model import ScrapeLimits, ScrapeOutput, ScrapeStatus, TargetContext
from multicloud_collector.scrape import builtin_scrapers
from multicloud_collector.scrape.base import Target

MiB = 1024 * 1024
NODE = fixture_bytes("node_exporter_1.5.prom")
DCGM = fixture_bytes("h100_8gpu.prom")
OM_CT = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _bomb(size: int) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([co.compress(b"\0" * MiB) for _ in range(size // MiB)] + [co.flush()])


def handlers(release: asyncio.Event) -> dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    bomb = _bomb(64 * MiB)

    def fixed(
        body: bytes, status: int = 200, ctype: str = "text/plain; version=0.0.4", **hdrs: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def h(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, status=status, headers={"Content-Type": ctype, **hdrs})

        return h

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"filler_metric 1\n" * 16384
        sent = 0
        try:
            while sent < 100 * MiB:
                await resp.write(chunk)
                sent += len(chunk)
        except ConnectionError:
            pass
        return resp

    async def loris(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            while not release.is_set():
                await resp.write(b"#")
                await asyncio.sleep(0.02)  # the target's trickle pace
        except ConnectionError:
            pass
        return resp

    async def reset(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(len(NODE))})
        await resp.prepare(request)
        await resp.write(NODE[:1000])
        assert request.transport is not None
        request.transport.abort()
        return resp

    return {
        "/good": fixed(NODE),
        "/good2": fixed(NODE, **{"Content-Encoding": "identity"}),
        "/dcgm": fixed(DCGM),
        "/malformed": fixed(b"ok_metric 1\nmetric{ 1\n"),
        "/huge": huge,
        "/bomb": fixed(bomb, **{"Content-Encoding": "gzip"}),
        "/loris": loris,
        "/reset": reset,
        "/badutf8": fixed(b'm{l="\xff\xfe"} 1\n'),
        "/dups": fixed(b"dup_metric 1\ndup_metric 2\nother 3\n"),
        "/nan": fixed(b"a NaN\nb +Inf\nc -Inf\nd 1\n"),
        "/404": fixed(b"not found", status=404),
        "/500": fixed(b"boom", status=500),
        "/om": fixed(b"# TYPE om_requests counter\nom_requests_total 7 1700000000.5\n# EOF\n", ctype=OM_CT),
    }


EXPECTED_ERRORS = {
    "/malformed": "parse",
    "/huge": "body_limit",
    "/bomb": "body_limit",
    "/loris": "timeout",
    "/reset": "connection",
    "/badutf8": "encoding",
    "/404": "http_status",
    "/500": "http_status",
}


def make_target(base: str, path: str) -> Target:
    kind = "dcgm" if path == "/dcgm" else "generic"
    url = base + path
    ctx = TargetContext("cust", "prov", "acct", f"acct/{kind}/{url}", kind, kind)
    # Only the slow-loris target needs a short deadline; the others get room for a loaded CI box.
    timeout = 0.5 if path == "/loris" else 8.0
    return Target(ctx=ctx, url=url, interval=10.0, timeout=timeout, limits=ScrapeLimits(body_size_bytes=MiB))


def by_path(outputs: list[ScrapeOutput]) -> dict[str, ScrapeOutput]:
    return {"/" + o.report.url.rsplit("/", 1)[1]: o for o in outputs}


def values(out: ScrapeOutput) -> dict[str, float]:
    return {s.metric: v for b in out.blocks for s, v in zip(b.series, b.values, strict=True)}


@pytest.mark.slow
async def test_every_bad_target_fails_alone(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    release = asyncio.Event()
    app = web.Application()
    routes = handlers(release)
    for path, h in routes.items():
        app.router.add_get(path, h)
    base = await app_servers.start(app)
    targets = [make_target(base, p) for p in routes]
    scrapers = builtin_scrapers()
    tracemalloc.start()
    try:
        result = await collect_all("acct", targets, session, scrapers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        release.set()
    outs = by_path(result.outputs)
    assert set(outs) == set(routes)
    got_errors = {p: o.report.error_reason for p, o in outs.items() if o.report.status is ScrapeStatus.ERROR}
    assert got_errors == EXPECTED_ERRORS
    for p, o in outs.items():
        if p in EXPECTED_ERRORS:
            assert base.split("//")[1] in o.report.error, o.report.error  # names the target
            assert values(o)["up"] == 0.0
            assert set(values(o)) == {"up", "scrape_duration_seconds"}  # no partial rows
    # Healthy targets are complete even though they shared the pass with the hostile ones.
    alone = await scrapers["generic"].scrape(make_target(base, "/good"), session)
    for p in ("/good", "/good2"):
        assert outs[p].report.status is ScrapeStatus.OK
        assert outs[p].report.samples == alone.report.samples > 100
    assert len(outs["/dcgm"].gpus) == 8
    # Duplicates: the first sample wins; NaN/Inf are dropped and counted; OpenMetrics parses.
    assert values(outs["/dups"])["dup_metric"] == 1.0
    assert outs["/dups"].report.samples == 2
    assert outs["/nan"].report.dropped == 3
    assert set(values(outs["/nan"])) >= {"d", "up"} and "a" not in values(outs["/nan"])
    om = outs["/om"]
    assert om.report.status is ScrapeStatus.OK
    assert [(b.ts_ms, s.metric) for b in om.blocks for s in b.series if s.metric.startswith("om_")] == [
        (1700000000500, "om_requests_total")
    ]
    # 100 MB and a 64 MiB bomb were refused without ever being held in memory.
    assert peak < 32 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


async def test_sample_limit_fails_the_scrape(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    async def many(request: web.Request) -> web.Response:
        return web.Response(
            body=b"".join(b'm{i="%d"} 1\n' % i for i in range(500)), content_type="text/plain"
        )

    app = web.Application()
    app.router.add_get("/many", many)
    base = await app_servers.start(app)
    t = make_target(base, "/many")
    t = Target(ctx=t.ctx, url=t.url, interval=5.0, timeout=1.0, limits=ScrapeLimits(samples_per_scrape=100))
    out = await builtin_scrapers()["generic"].scrape(t, session)
    assert out.report.error_reason == "sample_limit"
