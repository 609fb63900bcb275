"""The chDB-backed ClickHouse HTTP test server, driven by real clients (aiohttp, aiochclient).

These tests pin the protocol the HTTP sink and ``mcc migrate`` rely on: if the test server stops
behaving like a ClickHouse server, the sink tests built on it prove nothing.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from support.ch_http_server import ChQueryError, ChServer, ch_server

from multicloud_collector.migrations import apply_migrations

pytest.importorskip("chdb")
aiochclient = pytest.importorskip("aiochclient")

PASSWORD = "s3cr3t"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChServer]:
    yield from ch_server(tmp_path_factory, password=PASSWORD)


@pytest.fixture
async def client(server: ChServer, session: aiohttp.ClientSession) -> AsyncIterator[object]:
    yield aiochclient.ChClient(session, url=server.url, user="default", password=PASSWORD)


@pytest.fixture(autouse=True)
def _clean_faults(server: ChServer) -> Iterator[None]:
    server.reset()
    yield
    server.reset()


def auth() -> dict[str, str]:
    return {"X-ClickHouse-User": "default", "X-ClickHouse-Key": PASSWORD}


async def post(
    session: aiohttp.ClientSession, server: ChServer, body: bytes, **params: str
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(f"{server.url}/", params=params, data=body, headers=auth()) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_ping_and_is_alive(server: ChServer, session: aiohttp.ClientSession, client: object) -> None:
    async with session.get(f"{server.url}/ping") as resp:
        assert (resp.status, await resp.text()) == (200, "Ok.\n")
    assert await client.is_alive()  # type: ignore[attr-defined]


async def test_full_schema_migrations_and_aiochclient_round_trip(server: ChServer, client: object) -> None:
    report = await apply_migrations(lambda sql: asyncio.to_thread(server.query, sql), "mig")
    assert report.applied[0] == "0001_core.sql" and not report.already_applied
    assert server.query("EXISTS TABLE mig.samples").strip() == "1"
    ts = dt.datetime(2030, 1, 2, 3, 4, 5, 123000)
    await client.execute(  # type: ignore[attr-defined]
        "INSERT INTO mig.samples (ts, provider, metric, labels, value, series_id) VALUES",
        (ts, "aws", "m\ttab", {"k'ey": "v\\al\nue"}, math.inf, 7),
    )
    row = await client.fetchrow("SELECT provider, metric, labels, value, series_id FROM mig.samples")  # type: ignore[attr-defined]
    assert list(row.values()) == ["aws", "m\ttab", {"k'ey": "v\\al\nue"}, math.inf, 7]
    assert await client.fetchval("SELECT count() FROM mig.samples") == 1  # type: ignore[attr-defined]


async def test_jsoneachrow_insert_and_fetch(server: ChServer, session: aiohttp.ClientSession) -> None:
    server.query(
        "CREATE TABLE IF NOT EXISTS default.j (id UInt32, s String, ts DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY id"
    )
    rows = [{"id": i, "s": f'row {i} "q" \\', "ts": 1_900_000_000 + i / 1000} for i in range(100)]
    body = b"\n".join(orjson.dumps(r) for r in rows)
    status, _, _ = await post(session, server, body, query="INSERT INTO default.j FORMAT JSONEachRow")
    assert status == 200
    status, _, out = await post(
        session, server, b"SELECT id, s FROM default.j ORDER BY id FORMAT JSONEachRow"
    )
    assert [orjson.loads(line) for line in out.splitlines()] == [{"id": r["id"], "s": r["s"]} for r in rows]
    # whole statement in the body, and the database parameter
    status, _, _ = await post(
        session, server, b'INSERT INTO j FORMAT JSONEachRow\n{"id": 1000, "s": "b"}', database="default"
    )
    assert status == 200
    assert server.query("SELECT s FROM default.j WHERE id = 1000") == "b\n"


async def test_rowbinary_insert(server: ChServer, session: aiohttp.ClientSession) -> None:
    server.query("CREATE TABLE IF NOT EXISTS default.rb (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    data = (5).to_bytes(4, "little") + bytes([3]) + b"\nxy"  # a string that starts with a newline
    status, _, body = await post(session, server, data, query="INSERT INTO default.rb FORMAT RowBinary")
    assert status == 200, body
    assert server.query("SELECT a, hex(s) FROM default.rb") == "5\t0A7879\n"


async def test_settings_passthrough_and_unknown_setting(
    server: ChServer, session: aiohttp.ClientSession
) -> None:
    status, _, out = await post(session, server, b"SELECT getSetting('max_threads')", max_threads="3")
    assert (status, out) == (200, b"3\n")
    client = aiochclient.ChClient(session, url=server.url, password=PASSWORD, max_block_size="1234")
    assert await client.fetchval("SELECT getSetting('max_block_size')") == 1234
    status, headers, out = await post(session, server, b"SELECT 1", no_such_setting="1")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "115"
    assert out.startswith(b"Code: 115. DB::Exception: Unknown setting 'no_such_setting'")


@pytest.mark.parametrize(
    ("sql", "code", "status"),
    [
        (b"SELECT * FROM default.nope", 60, 404),
        (b"SELECT * FROM nodb.t", 81, 404),
        (b"SELEC 1", 62, 400),
        (b"SELECT sleep(1) SETTINGS max_execution_time = 0.2", 159, 408),
        (b"", 62, 400),
    ],
)
async def test_errors_have_code_header_and_status(
    server: ChServer, session: aiohttp.ClientSession, sql: bytes, code: int, status: int
) -> None:
    got_status, headers, body = await post(session, server, sql)
    assert (got_status, headers["X-ClickHouse-Exception-Code"]) == (status, str(code))
    assert body.startswith(f"Code: {code}. DB::Exception: ".encode())


async def test_parse_error_in_jsoneachrow(server: ChServer, session: aiohttp.ClientSession) -> None:
    server.query("CREATE TABLE IF NOT EXISTS default.pe (a UInt32) ENGINE = MergeTree ORDER BY a")
    status, headers, _ = await post(
        session, server, b'{"a": 1}\n{"a": "x"}', query="INSERT INTO default.pe FORMAT JSONEachRow"
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "27")
    assert server.query("SELECT count() FROM default.pe") == "0\n"  # one block: all or nothing


@pytest.mark.parametrize(
    "how",
    ["headers", "basic", "params"],
)
async def test_authentication(server: ChServer, session: aiohttp.ClientSession, how: str) -> None:
    def request(password: str) -> dict[str, object]:
        if how == "headers":
            return {"headers": {"X-ClickHouse-User": "default", "X-ClickHouse-Key": password}}
        if how == "basic":
            token = base64.b64encode(f"default:{password}".encode()).decode()
            return {"headers": {"Authorization": f"Basic {token}"}}
        return {"params": {"user": "default", "password": password}}

    async with session.post(f"{server.url}/", data=b"SELECT 42", **request(PASSWORD)) as resp:  # type: ignore[arg-type]
        assert (resp.status, await resp.text()) == (200, "42\n")
    async with session.post(f"{server.url}/", data=b"SELECT 42", **request("wrong")) as resp:  # type: ignore[arg-type]
        assert resp.status == 403 and resp.headers["X-ClickHouse-Exception-Code"] == "516"
        assert "wrong" not in await resp.text()


async def test_gzip_request_and_response(server: ChServer, session: aiohttp.ClientSession) -> None:
    server.query("CREATE TABLE IF NOT EXISTS default.gz (a UInt32) ENGINE = MergeTree ORDER BY a")
    body = gzip.compress(b"\n".join(orjson.dumps({"a": i}) for i in range(50)))
    async with session.post(
        f"{server.url}/",
        params={"query": "INSERT INTO default.gz FORMAT JSONEachRow"},
        data=body,
        headers={**auth(), "Content-Encoding": "gzip"},
    ) as resp:
        assert resp.status == 200
    async with session.post(
        f"{server.url}/",
        params={"enable_http_compression": "1"},
        data=b"SELECT sum(a) FROM default.gz",
        headers={**auth(), "Accept-Encoding": "gzip"},
        auto_decompress=False,
    ) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await resp.read()) == b"1225\n"
    client = aiochclient.ChClient(session, url=server.url, password=PASSWORD, compress_response=True)
    assert await client.fetchval("SELECT count() FROM default.gz") == 50


async def test_dedup_token_really_deduplicates(server: ChServer, session: aiohttp.ClientSession) -> None:
    server.query(
        "CREATE TABLE IF NOT EXISTS default.dd (a UInt32) ENGINE = MergeTree ORDER BY a "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    body = b'{"a": 1}\n{"a": 2}'
    insert = "INSERT INTO default.dd FORMAT JSONEachRow"
    for token in ("t1", "t1", "t2", "t1"):
        status, _, _ = await post(session, server, body, query=insert, insert_deduplication_token=token)
        assert status == 200
    assert server.query("SELECT count() FROM default.dd") == "4\n"  # t1 once, t2 once


async def test_injected_failures_and_stats(server: ChServer, session: aiohttp.ClientSession) -> None:
    server.query("CREATE TABLE IF NOT EXISTS default.fi (a UInt32) ENGINE = MergeTree ORDER BY a")
    server.fail_inserts(252, times=2)
    insert = "INSERT INTO default.fi FORMAT JSONEachRow"
    results = [await post(session, server, b'{"a": 1}', query=insert) for _ in range(3)]
    assert [(s, h.get("X-ClickHouse-Exception-Code")) for s, h, _ in results] == [
        (500, "252"),
        (500, "252"),
        (200, None),
    ]
    assert results[0][2].startswith(b"Code: 252. DB::Exception:") and b"(TOO_MANY_PARTS)" in results[0][2]
    server.fail_inserts(202, times=1, status=503)
    status, headers, _ = await post(session, server, b'{"a": 1}', query=insert)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (503, "202")
    stats = server.stats()
    assert stats["failures_injected"] == 3 and stats["inserts"] == 1 and stats["rows"] == 1
    assert server.query("SELECT count() FROM default.fi") == "1\n"


async def test_answer_lost_after_commit(server: ChServer, session: aiohttp.ClientSession) -> None:
    server.query(
        "CREATE TABLE IF NOT EXISTS default.lost (a UInt32) ENGINE = MergeTree ORDER BY a "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    server.drop_after_commit(1)
    params = {"query": "INSERT INTO default.lost FORMAT JSONEachRow", "insert_deduplication_token": "x"}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(session, server, b'{"a": 1}', **params)
    assert server.query("SELECT count() FROM default.lost") == "1\n"  # committed
    status, _, _ = await post(session, server, b'{"a": 1}', **params)  # the retry
    assert status == 200 and server.query("SELECT count() FROM default.lost") == "1\n"
    assert server.stats()["drops_injected"] == 1


async def test_hang_blocks_until_released(server: ChServer, session: aiohttp.ClientSession) -> None:
    await asyncio.to_thread(server.hang, True)
    with pytest.raises(TimeoutError):
        async with session.get(f"{server.url}/ping", timeout=aiohttp.ClientTimeout(total=0.3)):
            pass
    pending = asyncio.create_task(post(session, server, b"SELECT 7"))
    deadline = asyncio.get_running_loop().time() + 10
    while (await asyncio.to_thread(server.stats))["hung"] < 2:
        assert asyncio.get_running_loop().time() < deadline, "request never reached the hung server"
        await asyncio.sleep(0.02)
    assert not pending.done()
    await asyncio.to_thread(server.hang, False)
    status, _, out = await asyncio.wait_for(pending, 10)
    assert (status, out) == (200, b"7\n")


def test_restart_keeps_port_and_data_and_kill_keeps_committed(tmp_path: Path) -> None:
    with ChServer(tmp_path / "db") as srv:
        srv.query("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a")
        srv.query("INSERT INTO t VALUES (1)")
        port = srv.port
        srv.restart()
        assert srv.port == port and srv.query("SELECT count() FROM t") == "1\n"
        srv.query("INSERT INTO t VALUES (2)")
        srv.kill()
        assert not srv.running
        with pytest.raises(OSError):
            srv.query("SELECT 1")
        srv.start()
        assert srv.port == port and srv.query("SELECT sum(a) FROM t") == "3\n"
    with pytest.raises(OSError):
        srv.query("SELECT 1")
    with ChServer(tmp_path / "db") as again, pytest.raises(ChQueryError) as err:
        again.query("SELECT * FROM t_missing")
    assert err.value.status == 404 and "UNKNOWN_TABLE" in err.value.body
