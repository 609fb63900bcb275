"""StatusServer on a real loopback port, exercised with a real aiohttp client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from multicloud_collector.model import ScrapeReport, ScrapeStatus, TargetContext
from multicloud_collector.secrets import Secret
from multicloud_collector.selfmetrics import SelfMetrics
from multicloud_collector.server import MAX_QUERY_BYTES, StatusServer, parse_listen


@dataclass
class State:
    ready: bool = True
    detail: dict[str, Any] = field(default_factory=lambda: {"sink": "writing"})
    queries: list[tuple[str, str]] = field(default_factory=list)
    fail_with: Exception | None = None

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.fail_with is not None:
            raise self.fail_with
        return self.ready, dict(self.detail)

    async def query(self, sql: str, fmt: str) -> bytes:
        self.queries.append((sql, fmt))
        if self.fail_with is not None:
            raise self.fail_with
        return b'{"n":1}\n{"n":2}\n'


def report(target: str, status: ScrapeStatus = ScrapeStatus.OK, error: str = "") -> ScrapeReport:
    return ScrapeReport(
        ts_ms=1_700_000_000_123,
        ctx=TargetContext("cust", "prov", "acct", target, "node", "exposition"),
        url="http://user:pw@127.0.0.1:9100/metrics?key=abc",
        status=status,
        duration_ms=12.3456,
        samples=42 if status is ScrapeStatus.OK else 0,
        bytes=1000,
        error=error,
        error_reason="timeout" if error else "",
    )


Started = Callable[..., Any]


@pytest.fixture
async def started() -> AsyncIterator[Callable[..., Any]]:
    servers: list[StatusServer] = []

    async def start(
        metrics: SelfMetrics, state: State, *, with_query: bool = True, **kw: Any
    ) -> StatusServer:
        srv = StatusServer(
            "127.0.0.1:0", metrics, readiness=state.readiness, query=state.query if with_query else None, **kw
        )
        await srv.start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        await s.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_healthz_ok_and_unhealthy_on_loop_lag(started: Started, client: aiohttp.ClientSession) -> None:
    metrics = SelfMetrics()
    srv = await started(metrics, State(), max_loop_lag=1.0)
    assert srv.port > 0
    async with client.get(f"{srv.url}/healthz") as r:
        assert r.status == 200 and await r.json() == {"status": "ok"}
    metrics.loop_lag(3.0)
    async with client.get(f"{srv.url}/healthz") as r:
        body = await r.json()
        assert r.status == 503
        assert body == {"status": "unhealthy", "reason": "event_loop_lag", "loop_lag_max_seconds": 3.0}


async def test_readyz(started: Started, client: aiohttp.ClientSession) -> None:
    state = State()
    srv = await started(SelfMetrics(), state)
    async with client.get(f"{srv.url}/readyz") as r:
        assert r.status == 200 and await r.json() == {"status": "ready", "sink": "writing"}
    state.ready, state.detail = False, {"sink": "backing_off", "last_error": "connection refused"}
    async with client.get(f"{srv.url}/readyz") as r:
        assert r.status == 503
        assert await r.json() == {
            "status": "not_ready",
            "reason": {"sink": "backing_off", "last_error": "connection refused"},
        }
    canary = Secret("ready-canary-77ab")
    state.fail_with = RuntimeError(f"cannot read state with {canary.reveal()}")
    async with client.get(f"{srv.url}/readyz") as r:
        text = await r.text()
        assert r.status == 503 and "RuntimeError" in text and canary.reveal() not in text


async def test_metrics_endpoint(started: Started, client: aiohttp.ClientSession) -> None:
    metrics = SelfMetrics()
    metrics.scrape_finished(report("t1"))
    srv = await started(metrics, State())
    async with client.get(f"{srv.url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["mcc_scrapes"].samples[0].value == 1
    assert "mcc_targets_up" in fams


async def test_targets_api(started: Started, client: aiohttp.ClientSession) -> None:
    metrics = SelfMetrics()
    canary = Secret("targets-canary-5c1d")
    metrics.scrape_finished(
        report("b-target", ScrapeStatus.ERROR, error=f"timeout calling {canary.reveal()}")
    )
    metrics.scrape_finished(report("a-target"))
    srv = await started(metrics, State())
    async with client.get(f"{srv.url}/api/v1/targets") as r:
        assert r.status == 200
        body = await r.json()
    assert [t["target"] for t in body] == ["a-target", "b-target"]
    a, b = body
    assert a == {
        "target": "a-target",
        "kind": "node",
        "customer": "cust",
        "provider": "prov",
        "account": "acct",
        "url": "http://127.0.0.1:9100/metrics?key=***",
        "status": "ok",
        "samples": 42,
        "duration_ms": 12.346,
        "error": "",
        "error_reason": "",
        "ts": "2023-11-14T22:13:20.123Z",
    }
    assert b["status"] == "error" and b["error"] == "timeout calling ***" and b["error_reason"] == "timeout"


async def test_query_endpoint(started: Started, client: aiohttp.ClientSession) -> None:
    state = State()
    srv = await started(SelfMetrics(), state)
    async with client.post(f"{srv.url}/api/v1/query?format=JSONEachRow", data=b"SELECT 1 ") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/x-ndjson"
        assert await r.read() == b'{"n":1}\n{"n":2}\n'
    async with client.post(f"{srv.url}/api/v1/query", data=b"SELECT 2") as r:
        assert r.status == 200
    async with client.post(f"{srv.url}/api/v1/query?format=Parquet", data=b"SELECT 3") as r:
        assert r.headers["Content-Type"] == "application/octet-stream"
    assert state.queries == [
        ("SELECT 1", "JSONEachRow"),
        ("SELECT 2", "JSONEachRow"),
        ("SELECT 3", "Parquet"),
    ]


@pytest.mark.parametrize(
    ("url_suffix", "body", "status", "error"),
    [
        ("?format=JSON;DROP", b"SELECT 1", 400, "format: invalid output format name"),
        ("", b"   ", 400, "empty query"),
        ("", b"\xff\xfe", 400, "not UTF-8"),
        ("", b"S" * (MAX_QUERY_BYTES + 1), 413, "larger than 65536 bytes"),
    ],
)
async def test_query_rejects_bad_requests(
    started: Started, client: aiohttp.ClientSession, url_suffix: str, body: bytes, status: int, error: str
) -> None:
    state = State()
    srv = await started(SelfMetrics(), state)
    async with client.post(f"{srv.url}/api/v1/query{url_suffix}", data=body) as r:
        assert r.status == status
        assert error in (await r.json())["error"]
    assert state.queries == []


async def test_query_at_the_size_limit_is_accepted(started: Started, client: aiohttp.ClientSession) -> None:
    state = State()
    srv = await started(SelfMetrics(), state)
    sql = b"SELECT 1 -- " + b"x" * (MAX_QUERY_BYTES - 12)
    async with client.post(f"{srv.url}/api/v1/query", data=sql) as r:
        assert r.status == 200
    assert len(state.queries[0][0]) == MAX_QUERY_BYTES


async def test_query_errors_are_json_400_and_redacted(
    started: Started, client: aiohttp.ClientSession
) -> None:
    state = State()
    canary = Secret("query-canary-31f0")
    srv = await started(SelfMetrics(), state)
    state.fail_with = ValueError(f"Code: 62. Syntax error near {canary.reveal()}")
    async with client.post(f"{srv.url}/api/v1/query", data=b"SELEC 1") as r:
        assert r.status == 400
        assert await r.json() == {"error": "Code: 62. Syntax error near ***"}


async def test_query_without_store_is_404(started: Started, client: aiohttp.ClientSession) -> None:
    srv = await started(SelfMetrics(), State(), with_query=False)
    async with client.post(f"{srv.url}/api/v1/query", data=b"SELECT 1") as r:
        assert r.status == 404
        assert "no query endpoint" in (await r.json())["error"]


async def test_status_page(started: Started, client: aiohttp.ClientSession) -> None:
    metrics = SelfMetrics()
    metrics.scrape_finished(report("<script>alert(1)</script>"))
    metrics.scrape_finished(report("down-target", ScrapeStatus.ERROR, error="connection refused"))
    srv = await started(metrics, State(detail={"sink": "writing", "queue_rows": 12}))
    async with client.get(f"{srv.url}/") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        page = await r.text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "targets up: <b>1</b>" in page and "targets down: <b>1</b>" in page
    assert "<li>sink: writing</li>" in page and "connection refused" in page and "<b>ready</b>" in page


async def test_stop_releases_the_port_and_is_idempotent(client: aiohttp.ClientSession) -> None:
    srv = StatusServer("127.0.0.1:0", SelfMetrics(), readiness=State().readiness)
    await srv.start()
    url = srv.url
    await srv.stop()
    await srv.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.get(f"{url}/healthz"):
            pass


async def test_bind_conflict_names_the_listen_setting() -> None:
    first = StatusServer("127.0.0.1:0", SelfMetrics(), readiness=State().readiness)
    await first.start()
    try:
        second = StatusServer(f"127.0.0.1:{first.port}", SelfMetrics(), readiness=State().readiness)
        with pytest.raises(OSError, match=rf"collector.listen: cannot bind 127.0.0.1:{first.port}"):
            await second.start()
    finally:
        await first.stop()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        (":9108", ("127.0.0.1", 9108)),
        ("9108", ("127.0.0.1", 9108)),
        ("[::1]:0", ("::1", 0)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["localhost", "host:http", "127.0.0.1:70000", "127.0.0.1:-1"])
def test_parse_listen_errors_name_the_field(listen: str) -> None:
    with pytest.raises(ValueError, match=r"collector\.listen"):
        parse_listen(listen)


def test_ipv6_url() -> None:
    srv = StatusServer("[::1]:9108", SelfMetrics(), readiness=State().readiness)
    assert srv.url == "http://[::1]:9108" and srv.host == "::1" and srv.port == 9108


@pytest.mark.integration
async def test_real_prometheus_scrapes_self_metrics(tmp_path: Any) -> None:
    """The /metrics output is accepted by a real Prometheus (the format and content type are right)."""
    import asyncio
    import contextlib

    from support.services import PROMETHEUS_BIN, have_binary, prometheus, prometheus_query, wait_for_series

    if not have_binary(PROMETHEUS_BIN):
        pytest.skip(f"{PROMETHEUS_BIN} not installed")
    metrics = SelfMetrics()
    metrics.scrape_finished(report("t1"))
    srv = StatusServer("127.0.0.1:0", metrics, readiness=State().readiness)
    await srv.start()
    try:
        with contextlib.ExitStack() as stack:
            prom = await asyncio.to_thread(
                stack.enter_context, prometheus(tmp_path / "prom", {"mcc": f"127.0.0.1:{srv.port}"})
            )
            await asyncio.to_thread(wait_for_series, prom.url, 'mcc_scrapes_total{kind="node",status="ok"}')
            data = await asyncio.to_thread(prometheus_query, prom.url, 'up{job="mcc"}')
            assert data["data"]["result"][0]["value"][1] == "1"  # type: ignore[index]
            await asyncio.to_thread(stack.close)
    finally:
        await srv.stop()
