"""PromQLScraper against a loopback server that answers like the Prometheus HTTP API."""

from __future__ import annotations

import math
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from support.services import AppServers

from multicloud_collector.model import ScrapeLimits, ScrapeStatus, TargetContext
from multicloud_collector.scrape.base import PromQuery, Target, is_transient
from multicloud_collector.scrape.promql import PromQLScraper
from multicloud_collector.secrets import Secret


def ok(result_type: str, result: Any, warnings: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "success", "data": {"resultType": result_type, "result": result}}
    if warnings:
        body["warnings"] = warnings
    return body


ANSWERS: dict[str, tuple[int, Any]] = {
    "vec": (
        200,
        ok(
            "vector",
            [
                {"metric": {"__name__": "node_load1", "instance": "n1"}, "value": [1700000000.5, "0.25"]},
                {"metric": {"instance": "n2"}, "value": [1700000000.5, "NaN"]},
            ],
        ),
    ),
    "sc": (200, ok("scalar", [1700000000.5, "42"])),
    "str": (200, ok("string", [1700000000.5, "hello"])),
    "mat": (
        200,
        ok(
            "matrix",
            [
                {"metric": {"job": "a"}, "values": [[1700000000, "1"], [1700000015, "2"]]},
                {"metric": {"job": "b"}, "values": [[1700000015, "+Inf"]]},
            ],
        ),
    ),
    "warn": (200, ok("vector", [{"metric": {}, "value": [1700000000, "1"]}], warnings=["partial response"])),
    "bad": (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3: unexpected"}),
    "busy": (503, {"status": "error", "errorType": "timeout", "error": "query timed out"}),
    "notjson": (200, "<html>proxy login</html>"),
    "weird": (200, ok("banana", [])),
}


async def fake_prometheus(app_servers: AppServers, seen: list[web.Request]) -> str:
    async def query(request: web.Request) -> web.Response:
        seen.append(request)
        status, body = ANSWERS[request.query["query"]]
        raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
        return web.Response(status=status, body=raw, content_type="application/json")

    app = web.Application()
    app.router.add_get("/prom/api/v1/query", query)
    return await app_servers.start(app) + "/prom"


def target(url: str, *names: str, **kw: Any) -> Target:
    ctx = TargetContext("cust", "prov", "acct", f"acct/promql/{url}", "promql", "promql")
    return Target(
        ctx=ctx,
        url=url,
        interval=5.0,
        timeout=2.0,
        queries=tuple(PromQuery(n, n) for n in names),
        extra_labels=(("customer", "cust"),),
        **kw,
    )


def points(out: Any) -> list[tuple[int, str, dict[str, str], float]]:
    return [
        (b.ts_ms, s.metric, dict(s.labels), v)
        for b in out.blocks
        for s, v in zip(b.series, b.values, strict=True)
    ]


async def test_vector_scalar_matrix_string(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    seen: list[web.Request] = []
    base = await fake_prometheus(app_servers, seen)
    out = await PromQLScraper().scrape(target(base, "vec", "sc", "mat", "str"), session)
    assert out.report.status is ScrapeStatus.OK, out.report.error
    pts = points(out)
    assert (1700000000500, "node_load1", {"instance": "n1", "query": "vec", "customer": "cust"}, 0.25) in pts
    assert (1700000000500, "sc", {"query": "sc", "customer": "cust"}, 42.0) in pts
    assert (1700000000000, "mat", {"job": "a", "query": "mat", "customer": "cust"}, 1.0) in pts
    assert (1700000015000, "mat", {"job": "a", "query": "mat", "customer": "cust"}, 2.0) in pts
    # NaN and +Inf are dropped by validation and counted; the string result is ignored.
    assert all(math.isfinite(p[3]) for p in pts)
    assert out.report.dropped == 2
    assert out.report.samples == 4
    # One block per distinct timestamp, in time order.
    assert [b.ts_ms for b in out.blocks] == sorted({b.ts_ms for b in out.blocks})
    assert len(out.blocks) == 3
    # Instant queries are evaluated at scrape time, with a server-side timeout below ours.
    q = seen[0].query
    assert abs(float(q["time"]) * 1000 - out.report.ts_ms) < 1000
    assert q["timeout"].endswith("ms") and int(q["timeout"][:-2]) < 2000


async def test_error_body_fails_target_but_keeps_other_queries(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    base = await fake_prometheus(app_servers, [])
    out = await PromQLScraper().scrape(target(base, "vec", "bad"), session)
    r = out.report
    assert r.status is ScrapeStatus.ERROR
    assert "1 of 2" in r.error
    assert "'bad'" in r.error and "bad_data" in r.error and "parse error at char 3" in r.error
    assert "127.0.0.1" in r.error
    assert not is_transient(r)
    assert any(p[1] == "node_load1" for p in points(out))  # the good query's samples survive
    assert r.samples == 1


async def test_503_error_is_transient(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    base = await fake_prometheus(app_servers, [])
    out = await PromQLScraper().scrape(target(base, "busy"), session)
    assert out.report.error_reason == "http_status"
    assert "query timed out" in out.report.error
    assert is_transient(out.report)


async def test_warnings_are_logged_and_scrape_succeeds(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    from structlog.testing import capture_logs

    base = await fake_prometheus(app_servers, [])
    with capture_logs() as logs:
        out = await PromQLScraper().scrape(target(base, "warn"), session)
    assert out.report.status is ScrapeStatus.OK
    assert [e["warnings"] for e in logs if e["event"] == "promql_warning"] == [["partial response"]]


async def test_malformed_responses(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    base = await fake_prometheus(app_servers, [])
    out = await PromQLScraper().scrape(target(base, "notjson", "weird"), session)
    assert out.report.error_reason == "protocol"
    assert "not JSON" in out.report.error
    assert "unknown resultType" in out.report.error


async def test_bearer_token_sent_never_shown(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    seen: list[web.Request] = []
    base = await fake_prometheus(app_servers, seen)
    t = target(base, "bad", headers=(("Authorization", Secret("Bearer prom-canary-token")),))
    out = await PromQLScraper().scrape(t, session)
    assert seen[0].headers["Authorization"] == "Bearer prom-canary-token"
    assert "prom-canary-token" not in out.report.error


async def test_sample_limit(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    base = await fake_prometheus(app_servers, [])
    out = await PromQLScraper().scrape(
        target(base, "mat", limits=ScrapeLimits(samples_per_scrape=2)), session
    )
    assert out.report.error_reason == "sample_limit"


def test_decode_shapes_directly() -> None:
    s = PromQLScraper()
    t = target("http://127.0.0.1:9/", "q")
    q = PromQuery("q", "up")
    res = s.decode(t, q, orjson.dumps(ok("vector", [{"metric": {"a-b": "1"}, "value": [1, "2"]}])))
    assert res.points[0][1].labels == (("a_b", "1"), ("customer", "cust"), ("query", "q"))
    for body in (
        b"[]",
        orjson.dumps({"status": "success"}),
        orjson.dumps(ok("vector", {"x": 1})),
        orjson.dumps(ok("vector", ["x"])),
        orjson.dumps(ok("scalar", [1])),
        orjson.dumps(ok("scalar", [1, "abc"])),
        orjson.dumps(ok("matrix", [{"metric": {}}])),
        orjson.dumps({"status": "weird"}),
    ):
        try:
            s.decode(t, q, body)
        except Exception as exc:
            assert type(exc).__name__ == "QueryError", body
            assert "'q'" in str(exc)
        else:
            raise AssertionError(f"accepted {body!r}")
    s.forget(t.id)
    assert t.id not in s._series


def test_histograms_skipped_and_label_limit() -> None:
    s = PromQLScraper()
    q = PromQuery("h", "x")
    t = target("http://127.0.0.1:9/", "h")
    body = orjson.dumps(ok("vector", [{"metric": {"__name__": "x"}, "histogram": [1, {}]}]))
    assert s.decode(t, q, body).points == []
    tight = target("http://127.0.0.1:9/", "h", limits=ScrapeLimits(labels_per_series=2))
    body = orjson.dumps(ok("vector", [{"metric": {"a": "1", "b": "2"}, "value": [1, "1"]}]))
    try:
        s.decode(tight, q, body)
    except Exception as exc:
        assert getattr(exc, "reason", None) == "label_limit"
    else:
        raise AssertionError("label limit not enforced")


def test_series_cache_is_bounded() -> None:
    s = PromQLScraper()
    t = target("http://127.0.0.1:9/", "c", limits=ScrapeLimits(samples_per_scrape=2))
    q = PromQuery("c", "x")
    for i in range(20):
        s.decode(t, q, orjson.dumps(ok("vector", [{"metric": {"i": str(i)}, "value": [1, "1"]}])))
    assert len(s._series[t.id]) <= 9
