"""The ClickHouse HTTP sink against a real engine behind the HTTP protocol (tests/support/ch_http_server.py).

Every row carries an id (``series_id``), so each test compares the exact multiset of ids that
arrived with the ids sent. Helpers here are shared with test_faults_clickhouse.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from support.ch_http_server import ChServer

from multicloud_collector.secrets import Secret
from multicloud_collector.selfmetrics import SelfMetrics
from multicloud_collector.sink.base import EncodedBatch, SinkError
from multicloud_collector.sink.batch_split import DAY_S, child_token, halves, rows_of, split_by_day
from multicloud_collector.sink.clickhouse import ClickHouseSink
from multicloud_collector.sink.quarantine import QUARANTINE_FILE, Quarantine
from multicloud_collector.sink.spool import Spool

NOW = int(time.time())


# -- shared helpers ----------------------------------------------------------------------------


def sample_rows(ids: range | list[int], ts: float | None = None, *, bad: set[int] = frozenset()) -> bytes:  # type: ignore[assignment]
    """``samples`` rows, one per id (``series_id`` = id = value); ids in ``bad`` carry an unparsable value."""
    out = []
    for i in ids:
        row: dict[str, Any] = {
            "ts": (ts if ts is not None else NOW) + (i % 1000) / 1000,
            "customer": "c",
            "provider": "p",
            "account": "a",
            "target": "t",
            "source": "test",
            "metric": "m",
            "labels": {"id": str(i)},
            "value": float(i),
            "series_id": i,
            "flags": 0,
        }
        line = orjson.dumps(row)
        if i in bad:
            line = line.replace(b'"value":%s' % orjson.dumps(float(i)), b'"value":"not-a-number"')
        out.append(line + b"\n")
    return b"".join(out)


def sample_batch(ids: range | list[int], **kw: Any) -> EncodedBatch:
    body = sample_rows(ids, **kw)
    return EncodedBatch.build("samples", body, len(rows_of(body)))


def new_db() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def build_sink(
    server: ChServer,
    tmp: Path,
    db: str,
    *,
    password: str | None = None,
    observer: Any = None,
    spool_bytes: int = 64 << 20,
    segment_bytes: int = 4 << 20,
    policy: str = "drop_oldest",
    timeout: float = 5.0,
    **kw: Any,
) -> ClickHouseSink:
    pw = password if password is not None else server.password
    return ClickHouseSink(
        server.url,
        database=db,
        user=server.user,
        password=Secret(pw) if pw else None,
        timeout=timeout,
        spool=Spool(
            tmp / "spool",
            max_bytes=spool_bytes,
            segment_bytes=segment_bytes,
            policy=policy,  # type: ignore[arg-type]
            observer=observer,
        ),
        quarantine=Quarantine(tmp / "quarantine", observer=observer),
        observer=observer,
        retry_initial=kw.pop("retry_initial", 0.05),
        retry_max=kw.pop("retry_max", 0.3),
        replay_rate=kw.pop("replay_rate", 0),
        **kw,
    )


def received_ids(server: ChServer, db: str, table: str = "samples") -> Counter[int]:
    text = server.query(f"SELECT series_id FROM {db}.{table} FORMAT TSV")
    return Counter(int(x) for x in text.split())


async def wait_for(pred: Callable[[], bool], limit: float, what: str) -> None:
    """Poll ``pred`` (run in a thread: it may do blocking HTTP) until true; fail after ``limit`` s."""
    deadline = time.monotonic() + limit
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if await asyncio.to_thread(pred):
                return
        except Exception as exc:  # e.g. the database does not exist yet
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {limit}s waiting for {what} (last error: {last})")


@pytest.fixture(scope="module")
def chserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChServer]:
    server = ChServer(tmp_path_factory.mktemp("ch") / "db", password="s3cret-pw")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def sink(chserver: ChServer, tmp_path: Path) -> AsyncIterator[ClickHouseSink]:
    chserver.reset()
    s = build_sink(chserver, tmp_path, new_db(), observer=SelfMetrics())
    await s.start()
    try:
        yield s
    finally:
        await s.close()


# -- the insert path ---------------------------------------------------------------------------


async def test_start_migrates_and_reads_server_facts(sink: ClickHouseSink, chserver: ChServer) -> None:
    assert sink.http is not None and sink.http.server is not None
    assert sink.http.server.version.split(".")[0].isdigit()
    assert {"async_insert", "insert_deduplication_token"} <= sink.http.server.settings
    assert sink.migration_report is not None and sink.migration_report.applied
    tables = chserver.query(f"SHOW TABLES FROM {sink.database}").split()
    assert {"samples", "gpu_samples", "scrape_log", "schema_migrations"} <= set(tables)
    assert sink.state() == "writing"


async def test_insert_writes_every_row_once_and_a_resend_is_deduplicated(
    sink: ClickHouseSink, chserver: ChServer
) -> None:
    b = sample_batch(range(1000))
    await sink.insert(b)
    await sink.insert(b)  # same token: the server drops the second copy
    assert received_ids(chserver, sink.database) == Counter(range(1000))
    other = EncodedBatch("samples", b.body, b.rows, token="another-token", created=b.created)
    await sink.insert(other)  # different token: kept (proves the token, not the data hash, decides)
    assert received_ids(chserver, sink.database) == Counter({i: 2 for i in range(1000)})


async def test_gzip_and_query_paths(chserver: ChServer, tmp_path: Path) -> None:
    s = build_sink(chserver, tmp_path, new_db(), compression="gzip")
    await s.start()
    try:
        await s.insert(sample_batch(range(50)))
        assert received_ids(chserver, s.database) == Counter(range(50))
        out = await s.query("SELECT count() FROM samples", "TabSeparated")
        assert out.strip() == b"50"
        assert (await s.execute(f"EXISTS TABLE {s.database}.samples FORMAT TabSeparated")).strip() == "1"
        with pytest.raises(SinkError) as err:
            await s.query("SELECT * FROM no_such_table", "TabSeparated")
        assert err.value.code == 60 and not err.value.retryable
    finally:
        await s.close()


async def test_a_batch_across_midnight_is_cut_into_one_insert_per_day(
    sink: ClickHouseSink, chserver: ChServer
) -> None:
    midnight = (NOW // DAY_S) * DAY_S
    body = sample_rows(range(0, 10), ts=midnight - 5) + sample_rows(range(10, 20), ts=midnight + 5)
    b = EncodedBatch.build("samples", body, 20)
    await sink.insert(b)
    await sink.insert(b)
    assert received_ids(chserver, sink.database) == Counter(range(20))
    where = f"database = '{sink.database}' AND table = 'samples' AND active"
    parts = chserver.query(f"SELECT count() FROM system.parts WHERE {where}")
    assert int(parts) == 2


async def test_poison_rows_are_quarantined_and_the_rest_written(chserver: ChServer, tmp_path: Path) -> None:
    metrics = SelfMetrics()
    s = build_sink(chserver, tmp_path, new_db(), observer=metrics)
    await s.start()
    try:
        bad = {17, 733}
        await s.insert(sample_batch(range(1000), bad=bad))
        assert received_ids(chserver, s.database) == Counter(i for i in range(1000) if i not in bad)
        lines = [
            orjson.loads(x) for x in (tmp_path / "quarantine" / QUARANTINE_FILE).read_bytes().splitlines()
        ]
        assert sorted(orjson.loads(x["row"])["series_id"] for x in lines) == sorted(bad)
        assert {x["table"] for x in lines} == {"samples"} and all(x["code"] for x in lines)
        text = metrics.render().decode()
        assert 'mcc_sink_rows_quarantined_total{table="samples"} 2.0' in text
        assert 'outcome="split"' in text
    finally:
        await s.close()


async def test_identifiers_are_validated_before_anything_is_sent(sink: ClickHouseSink) -> None:
    with pytest.raises(SinkError, match="invalid table name"):
        await sink.insert(EncodedBatch.build("samples; DROP TABLE x", b'{"a":1}\n', 1))


async def test_credentials_travel_in_headers_never_in_the_url() -> None:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        await request.read()
        q = request.query.get("query", "")
        if "system.settings" in (await request.text()):
            return web.Response(text="async_insert\ninsert_deduplication_token\n")
        return web.Response(text="24.8.1.1\n" if q == "" else "")

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        from multicloud_collector.sink.clickhouse_http import ClickHouseHttp

        async with aiohttp.ClientSession() as session:
            http = ClickHouseHttp(
                session,
                f"http://127.0.0.1:{port}",
                database="mcc",
                user="u",
                password=Secret("canary-pass-123"),
            )
            await http.probe()
            await http.insert("samples", b'{"a":1}\n', "tok-1")
        insert = seen[-1]
        assert "canary-pass-123" not in str(insert.url)
        assert insert.headers["X-ClickHouse-Key"] == "canary-pass-123"
        assert insert.query["insert_deduplication_token"] == "tok-1"
        assert insert.query["async_insert"] == "0"
        assert insert.query["query"] == "INSERT INTO mcc.samples FORMAT JSONEachRow"
    finally:
        await runner.cleanup()


async def test_an_old_server_without_the_settings_gets_none_of_them() -> None:
    from multicloud_collector.sink.clickhouse_http import ClickHouseHttp, ServerInfo

    async with aiohttp.ClientSession() as session:
        http = ClickHouseHttp(session, "http://127.0.0.1:9", database="mcc")
        http.server = ServerInfo("18.16.1", frozenset())
        params = http.insert_params("samples", "tok")
    assert set(params) == {"query"}


# -- batch cutting (pure) -----------------------------------------------------------------------


@given(
    stamps=st.lists(st.integers(min_value=0, max_value=5 * DAY_S), min_size=1, max_size=60),
)
def test_split_by_day_keeps_every_row_once_and_each_part_in_one_day(stamps: list[int]) -> None:
    body = b"".join(sample_rows([i], ts=float(t)) for i, t in enumerate(stamps))
    b = EncodedBatch.build("samples", body, len(stamps))
    parts = split_by_day(b)
    assert sorted(r for p in parts for r in rows_of(p.body)) == sorted(rows_of(body))
    for p in parts:
        days = {int(orjson.loads(r)["ts"] // DAY_S) for r in rows_of(p.body)}
        assert len(days) == 1 and p.rows == len(rows_of(p.body))
    if len(parts) > 1:
        assert split_by_day(b) == parts  # deterministic: same tokens on a retry
        assert len({p.token for p in parts}) == len(parts)


def test_halves_are_deterministic_and_cover_the_batch() -> None:
    b = sample_batch(range(7))
    left, right = halves(b)  # type: ignore[misc]
    assert rows_of(left.body) + rows_of(right.body) == rows_of(b.body)
    assert (left.token, right.token) == (child_token(b.token, "L"), child_token(b.token, "R"))
    assert halves(sample_batch(range(1))) is None
