"""Protocol compatibility with a real old server: the Debian clickhouse-server 18.16 package.

It cannot hold the collector's schema (no DateTime64, Map, CODEC or TTL), so a compatible table is
used; what is proven here is the framing: JSONEachRow over a raw POST, the 18.x error format
without the exception-code header, its statuses, and the version string.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator

import aiohttp
import orjson
import pytest
from support.clickhouse18 import OldServer, clickhouse18, find_binary

from multicloud_collector.sink.errors import Action, classify_response, parse_exception_code
from multicloud_collector.sink.server_version import at_least, parse_server_version

if find_binary() is None:
    pytest.skip(
        "clickhouse-server (Debian package, 18.16) is not installed; ./dev test installs it",
        allow_module_level=True,
    )

TABLE = "compat"
INSERT = f"INSERT INTO {TABLE} FORMAT JSONEachRow"


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OldServer]:
    with clickhouse18(tmp_path_factory.mktemp("ch18")) as server:
        yield server


def auth(server: OldServer, password: str | None = None) -> dict[str, str]:
    return {
        "X-ClickHouse-User": "default",
        "X-ClickHouse-Key": server.password if password is None else password,
    }


async def post(
    session: aiohttp.ClientSession,
    server: OldServer,
    body: bytes,
    *,
    password: str | None = None,
    headers: dict[str, str] | None = None,
    **params: str,
) -> tuple[int, dict[str, str], bytes]:
    all_headers = {**auth(server, password), **(headers or {})}
    async with session.post(f"{server.url}/", params=params, data=body, headers=all_headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


@pytest.fixture
async def table(old: OldServer, session: aiohttp.ClientSession) -> str:
    for sql in (
        f"DROP TABLE IF EXISTS {TABLE}",
        f"CREATE TABLE {TABLE} (ts DateTime, metric String, label_keys Array(String), "
        "label_values Array(String), value Float64) ENGINE = MergeTree ORDER BY (metric, ts)",
    ):
        status, _, body = await post(session, old, sql.encode())
        assert status == 200, body
    return TABLE


async def test_version_is_parsed(old: OldServer, session: aiohttp.ClientSession) -> None:
    status, _, body = await post(session, old, b"SELECT version()")
    assert status == 200
    version = parse_server_version(body)
    assert version[:2] == (18, 16)
    assert at_least(version, 18, 16) and not at_least(version, 22, 2)


def rows() -> list[dict[str, object]]:
    base = int(dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC).timestamp())
    texts = ["plain", 'quote " and \\ backslash', "tab\tnew\nline", "ünïcødé ✓", ""]
    return [
        {
            "ts": base + i,
            "metric": f"m_{i}_{t}",
            "label_keys": ["gpu", "mode"],
            "label_values": [str(i), t],
            "value": i * 0.25 - 1e-300 if i % 2 else float(i) * 1e12,
        }
        for i, t in enumerate(texts)
    ]


def expected(row: dict[str, object]) -> dict[str, object]:
    ts = row["ts"]
    assert isinstance(ts, int)
    return {**row, "ts": dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")}


async def test_jsoneachrow_round_trip_over_raw_post(
    old: OldServer, session: aiohttp.ClientSession, table: str
) -> None:
    sent = rows()
    status, headers, body = await post(session, old, b"\n".join(orjson.dumps(r) for r in sent), query=INSERT)
    assert status == 200, body
    assert "X-ClickHouse-Exception-Code" not in headers
    status, _, out = await post(
        session, old, f"SELECT * FROM {table} ORDER BY ts FORMAT JSONEachRow".encode()
    )
    assert status == 200
    assert [orjson.loads(line) for line in out.splitlines()] == [expected(r) for r in sent]


async def test_gzip_request_body(old: OldServer, session: aiohttp.ClientSession, table: str) -> None:
    data = gzip.compress(b"\n".join(orjson.dumps(r) for r in rows()))
    status, _, body = await post(session, old, data, headers={"Content-Encoding": "gzip"}, query=INSERT)
    assert status == 200, body
    status, _, out = await post(session, old, f"SELECT count() FROM {table}".encode())
    assert out == b"5\n"


@pytest.mark.parametrize(
    ("case", "code", "action"),
    [
        ("unknown_table", 60, Action.PERMANENT),
        ("syntax", 62, Action.PERMANENT),
        ("unknown_setting", 115, Action.PERMANENT),
        ("wrong_password", 193, Action.PERMANENT),
        ("bad_data", 27, Action.SPLIT),
        ("timeout", 159, Action.RETRY),
    ],
)
async def test_old_error_format_is_classified(
    old: OldServer, session: aiohttp.ClientSession, table: str, case: str, code: int, action: Action
) -> None:
    good = orjson.dumps(rows()[0])
    request: dict[str, object] = {
        "unknown_table": {"body": good, "query": "INSERT INTO no_such_table FORMAT JSONEachRow"},
        "syntax": {"body": b"SELEC 1"},
        "unknown_setting": {"body": good, "query": INSERT, "insert_deduplication_token": "batch-1"},
        "wrong_password": {"body": b"SELECT 1", "password": "not-the-password"},
        "bad_data": {"body": good + b'\n{"ts": 1, "value": "not a number"}', "query": INSERT},
        "timeout": {"body": b"SELECT sleep(2)", "max_execution_time": "1"},
    }[case]  # type: ignore[assignment]
    body = request.pop("body")
    assert isinstance(body, bytes)
    status, headers, answer = await post(session, old, body, **request)  # type: ignore[arg-type]
    assert status >= 400
    assert "X-ClickHouse-Exception-Code" not in headers  # 18.x: the body is the only source
    assert answer.startswith(f"Code: {code}, e.displayText() = DB::Exception:".encode())
    assert parse_exception_code(headers, answer) == code
    got = classify_response(status, headers, answer)
    assert (got.code, got.action, got.reason) == (code, action, f"code_{code}")
    if case == "bad_data":  # one block: nothing of the batch was written
        _, _, out = await post(session, old, f"SELECT count() FROM {table}".encode())
        assert out == b"0\n"
