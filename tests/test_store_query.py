"""``mcc query`` / ``mcc migrate`` plumbing: read-only guard, daemon first, embedded fallback, lock errors.

A subprocess plays the running daemon: it holds the data directory (so this process cannot open
it) and serves ``POST /api/v1/query`` on 127.0.0.1, the contract of the real endpoint.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.migrations import load_migrations
from multicloud_collector.model import SampleBlock, Series, TargetContext
from multicloud_collector.sink.base import EncodedBatch
from multicloud_collector.sink.embedded import EmbeddedSink
from multicloud_collector.sink.encode import encode_block
from multicloud_collector.store_query import (
    READ_ONLY_KEYWORDS,
    QueryError,
    check_format,
    daemon_base_url,
    ensure_read_only,
    migrate_store,
    run_query,
)

pytest.importorskip("chdb")

REPO = Path(__file__).resolve().parents[1]

DAEMON_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    import orjson
    from aiohttp import web
    from multicloud_collector.model import SampleBlock, Series, TargetContext
    from multicloud_collector.sink.base import EncodedBatch
    from multicloud_collector.sink.embedded import EmbeddedSink
    from multicloud_collector.sink.encode import encode_block
    from multicloud_collector.store_query import ensure_read_only

    async def main():
        sink = EmbeddedSink(sys.argv[1])
        await sink.start()
        ctx = TargetContext("cust", "vultr", "a", "daemon-target", "node", "exposition")
        block = SampleBlock(ctx, int(time.time() * 1000), [Series("up", (), 1)], [1.0], [])
        await sink.insert(EncodedBatch.build("samples", encode_block(block), 1))

        async def query(request):
            try:
                sql = ensure_read_only((await request.read()).decode())
                return web.Response(body=await sink.query(sql, request.query.get("format", "PrettyCompact")))
            except Exception as exc:
                return web.json_response({"error": str(exc)}, status=400)

        app = web.Application()
        app.router.add_post("/api/v1/query", query)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print("LISTENING", port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()
        await sink.close()

    asyncio.run(main())
    """
)


@dataclass
class Daemon:
    path: Path
    listen: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    path = tmp_path_factory.mktemp("daemon") / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", DAEMON_SCRIPT, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    while line and not line.startswith("LISTENING"):
        line = proc.stdout.readline()
    assert line.startswith("LISTENING"), "fake daemon did not start"
    try:
        yield Daemon(path, f"127.0.0.1:{line.split()[1]}")
    finally:
        proc.stdin.close()
        proc.wait(30)


@pytest.fixture(scope="module")
def free_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("free") / "data"


# -- read-only guard --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  select count() from mcc.samples;  ",
        "WITH 1 AS x SELECT x",
        "-- note\nSHOW TABLES FROM mcc",
        "/* c */ DESCRIBE TABLE mcc.samples",
        "desc mcc.samples",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE mcc.samples",
        "SELECT 'a;b', \"x;\" FROM t -- trailing; comment",
        "SELECT 'it''s', 'back\\'slash' ; ; -- done",
    ],
)
def test_read_only_statements_pass(sql: str) -> None:
    out = ensure_read_only(sql)
    assert not out.endswith(";") and out == out.strip()


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSERT INTO mcc.samples VALUES (1)", "got INSERT"),
        ("DROP TABLE mcc.samples", "got DROP"),
        ("  /* SELECT */ ALTER TABLE x DELETE WHERE 1", "got ALTER"),
        ("SELECT 1; DROP TABLE mcc.samples", "only one statement"),
        ("SELECT 1; 2", "only one statement"),
        ("SELECT 1;; 'x'", "only one statement"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("", "empty"),
        ("-- just a comment", "empty"),
        ("SELECT 'unterminated", "unterminated quoted string"),
        ("SELECT 1 /* open", "unterminated /\\* comment"),
    ],
)
def test_other_statements_are_refused_clearly(sql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        ensure_read_only(sql)


@given(
    st.sampled_from(["INSERT", "DROP", "ALTER", "CREATE", "TRUNCATE", "OPTIMIZE", "SYSTEM", "KILL", "SET"]),
    st.text(max_size=40),
)
def test_any_write_keyword_is_refused(keyword: str, rest: str) -> None:
    with pytest.raises(QueryError):
        ensure_read_only(f"{keyword} {rest}")


@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                ["SELECT", "select", "DROP", "WITH", "insert", "SHOW", ";", "(", " ", "\n", "1", "x"]
            ),
            st.text(st.characters(blacklist_characters="'\"`-/#"), max_size=5),
        ),
        max_size=8,
    )
)
def test_guard_accepts_only_a_single_statement_led_by_a_read_keyword(parts: list[str]) -> None:
    sql = "".join(parts)
    try:
        ensure_read_only(sql)
    except QueryError:
        return
    out = ensure_read_only(sql)
    words = re.findall(r"[A-Za-z_]+", sql)
    assert words and words[0].upper() in READ_ONLY_KEYWORDS
    assert ";" not in out and out == out.strip()
    head, _, tail = sql.partition(";")
    assert out == head.strip() and not tail.replace(";", "").strip()


def test_format_and_listen_validation() -> None:
    assert check_format("JSONEachRow") == "JSONEachRow"
    with pytest.raises(QueryError, match="invalid output format"):
        check_format("CSV; DROP")
    assert daemon_base_url("0.0.0.0:9464") == "http://127.0.0.1:9464"
    assert daemon_base_url(":9464") == "http://127.0.0.1:9464"
    assert daemon_base_url("[::]:9464") == "http://[::1]:9464"
    assert daemon_base_url("10.0.0.1:80") == "http://10.0.0.1:80"
    with pytest.raises(QueryError, match="HOST:PORT"):
        daemon_base_url("localhost")


# -- through the daemon ---------------------------------------------------------------------


async def test_query_goes_through_the_running_daemon(daemon: Daemon) -> None:
    data = await run_query(
        "SELECT target, value FROM mcc.samples WHERE target = 'daemon-target'",
        fmt="JSONEachRow",
        listen=daemon.listen,
        embedded_path=daemon.path,
        database="mcc",
    )
    assert [orjson.loads(x) for x in data.splitlines()] == [{"target": "daemon-target", "value": 1}]


async def test_daemon_errors_are_passed_on(daemon: Daemon) -> None:
    with pytest.raises(QueryError, match="UNKNOWN_TABLE") as exc:
        await run_query(
            "SELECT * FROM mcc.nope",
            fmt="CSV",
            listen=daemon.listen,
            embedded_path=daemon.path,
            database="mcc",
        )
    assert exc.value.store_unavailable is False


async def test_write_is_refused_before_anything_is_sent(daemon: Daemon) -> None:
    with pytest.raises(QueryError, match="only read-only statements"):
        await run_query(
            "TRUNCATE TABLE mcc.samples",
            fmt="CSV",
            listen=daemon.listen,
            embedded_path=daemon.path,
            database="mcc",
        )


async def test_locked_store_and_no_daemon_says_what_to_do(daemon: Daemon) -> None:
    with pytest.raises(QueryError) as exc:
        await run_query(
            "SELECT 1",
            fmt="CSV",
            listen=f"127.0.0.1:{free_port()}",
            embedded_path=daemon.path,
            database="mcc",
        )
    msg = str(exc.value)
    assert f"the data directory {daemon.path} is in use by another process" in msg
    assert "no mcc daemon answered" in msg and "collector.listen" in msg
    assert exc.value.store_unavailable


async def test_migrate_while_daemon_holds_the_store(daemon: Daemon) -> None:
    with pytest.raises(QueryError, match="restart `mcc run`"):
        await migrate_store(embedded_path=daemon.path, database="mcc", listen=daemon.listen)
    report = await migrate_store(
        embedded_path=daemon.path, database="mcc", listen=daemon.listen, dry_run=True
    )
    shipped = [m.filename for m in load_migrations()]
    assert report.dry_run and report.applied == [] and report.already_applied == shipped
    with pytest.raises(QueryError, match="the store is locked and nothing answered"):
        await migrate_store(
            embedded_path=daemon.path, database="mcc", listen=f"127.0.0.1:{free_port()}", dry_run=True
        )


# -- directly on the embedded store -------------------------------------------------------------


@pytest.fixture
async def not_a_daemon() -> AsyncIterator[str]:
    """Something else listening on the port: answers 404 in plain text."""
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_embedded_fallback_when_no_daemon(free_store: Path, not_a_daemon: str) -> None:
    with pytest.raises(QueryError, match="no embedded store at") as missing:
        await run_query(
            "SELECT 1", fmt="CSV", listen=f"127.0.0.1:{free_port()}", embedded_path=free_store, database="mcc"
        )
    assert missing.value.store_unavailable

    report = await migrate_store(embedded_path=free_store, database="mcc", listen="127.0.0.1:1")
    assert report.applied == [m.filename for m in load_migrations()]
    again = await migrate_store(embedded_path=free_store, database="mcc", listen="127.0.0.1:1")
    assert again.applied == []

    sink = EmbeddedSink(free_store, migrate=False)
    await sink.start()
    try:
        ctx = TargetContext("c", "p", "a", "direct", "node", "exposition")
        block = SampleBlock(ctx, int(time.time() * 1000), [Series("m", (), 1)], [2.5], [])
        await sink.insert(EncodedBatch.build("samples", encode_block(block), 1))
    finally:
        await sink.close()

    for listen in (f"127.0.0.1:{free_port()}", not_a_daemon):
        data = await run_query(
            "SELECT target, value FROM mcc.samples",
            fmt="CSV",
            listen=listen,
            embedded_path=free_store,
            database="mcc",
        )
        assert data == b'"direct",2.5\n'
    with pytest.raises(QueryError, match="UNKNOWN_TABLE") as bad:
        await run_query(
            "SELECT * FROM mcc.nope",
            fmt="CSV",
            listen=f"127.0.0.1:{free_port()}",
            embedded_path=free_store,
            database="mcc",
        )
    assert not bad.value.store_unavailable


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url ('http://127.0.0.1:1/x', 'CSV')",
        "select * from s3('http://127.0.0.1:1/b/k')",
        "SELECT * FROM remote('127.0.0.1', system.one)",
    ],
)
def test_table_functions_that_reach_files_or_network_are_refused(sql: str) -> None:
    with pytest.raises(QueryError, match="table function"):
        ensure_read_only(sql)


def test_column_named_like_a_table_function_is_allowed() -> None:
    assert ensure_read_only("SELECT url, file FROM mcc.scrape_log") == "SELECT url, file FROM mcc.scrape_log"
