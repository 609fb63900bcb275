"""Read access to the store for ``mcc query`` and schema changes for ``mcc migrate``.

Why the detour through the daemon: chDB lets only one process open a data directory, so while
``mcc run`` writes, the CLI cannot open the files. It first asks the running daemon's loopback
API (``POST /api/v1/query``) and opens the embedded store itself only when nothing answers. Only
read-only statements pass, checked here before anything is sent.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import orjson

from multicloud_collector.config.model import ClickHouseConfig
from multicloud_collector.migrations import Migration, MigrationReport, apply_migrations
from multicloud_collector.sink.base import SinkError
from multicloud_collector.sink.clickhouse_http import ClickHouseHttp
from multicloud_collector.sink.embedded import EmbeddedSink, StoreLockedError

READ_ONLY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
_FORMAT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]", "*"}
# Table functions that read local files, run programs or reach the network: a read-only query
# must not turn the daemon into a file reader or an SSRF proxy.
UNSAFE_FUNCTIONS = frozenset(
    {
        "FILE",
        "URL",
        "URLCLUSTER",
        "S3",
        "S3CLUSTER",
        "GCS",
        "OSS",
        "COSN",
        "AZUREBLOBSTORAGE",
        "AZUREBLOBSTORAGECLUSTER",
        "HDFS",
        "HDFSCLUSTER",
        "REMOTE",
        "REMOTESECURE",
        "CLUSTER",
        "CLUSTERALLREPLICAS",
        "MYSQL",
        "POSTGRESQL",
        "SQLITE",
        "MONGODB",
        "REDIS",
        "JDBC",
        "ODBC",
        "EXECUTABLE",
        "PYTHON",
        "INPUT",
        "ICEBERG",
        "DELTALAKE",
        "HUDI",
        "FILECLUSTER",
        "ARROWFLIGHT",
    }
)


class QueryError(Exception):
    """A query could not run; the message says why and what to do.

    ``store_unavailable`` is true when the store could not be reached at all (the CLI maps it to
    its own exit code), false when the store answered with an error (bad SQL, unknown table).
    """

    def __init__(self, message: str, *, store_unavailable: bool = False) -> None:
        super().__init__(message)
        self.store_unavailable = store_unavailable


class _DaemonUnreachable(Exception):
    pass


def _scan(sql: str) -> tuple[list[str], int]:
    """Words outside strings/comments, and where the first statement ends.

    Raises ``QueryError`` when anything but blanks, comments or ``;`` follows that end.
    """
    words: list[str] = []
    stmt_end = -1
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
            continue
        if sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            if close < 0:
                raise QueryError("unterminated /* comment in the query")
            i = close + 2
            continue
        if ch.isspace():
            i += 1
            continue
        if ch == ";":
            stmt_end = i if stmt_end < 0 else stmt_end
            i += 1
            continue
        if stmt_end >= 0:
            raise QueryError("only one statement per query is allowed (found ';' between statements)")
        if ch in "'\"`":
            j = i + 1
            while j < n and sql[j] != ch:
                j += 2 if sql[j] == "\\" else 1
            if j >= n:
                raise QueryError("unterminated quoted string in the query")
            i = j + 1
            continue
        m = _WORD_RE.match(sql, i)
        if m:
            word = m.group(0).upper()
            words.append(word)
            i = m.end()
            rest = sql[i:].lstrip()
            if rest.startswith("(") and word in UNSAFE_FUNCTIONS:
                raise QueryError(f"table function {m.group(0)}() is not allowed in queries through mcc")
        else:
            i += 1
    return words, (stmt_end if stmt_end >= 0 else n)


def ensure_read_only(sql: str) -> str:
    """Return the one statement without a trailing ``;``; raise ``QueryError`` unless it only reads."""
    words, stmt_end = _scan(sql)
    if not words:
        raise QueryError("the query is empty")
    if words[0] not in READ_ONLY_KEYWORDS:
        allowed = ", ".join(sorted(READ_ONLY_KEYWORDS))
        raise QueryError(f"only read-only statements are allowed ({allowed}); got {words[0]}")
    if "OUTFILE" in words:
        raise QueryError("INTO OUTFILE is not allowed: the query would write a file")
    return sql[:stmt_end].strip()


def check_format(fmt: str) -> str:
    if not _FORMAT_RE.match(fmt):
        raise QueryError(f"invalid output format {fmt!r}: use a ClickHouse format name such as PrettyCompact")
    return fmt


def daemon_base_url(listen: str) -> str:
    """``http://host:port`` for a ``collector.listen`` value, wildcard hosts mapped to loopback."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise QueryError(f"collector.listen {listen!r} must be HOST:PORT")
    if host in _WILDCARD_HOSTS:
        host = "[::1]" if ":" in host else "127.0.0.1"
    return f"http://{host}:{port}"


async def _query_daemon(sql: str, fmt: str, listen: str, limit_s: float) -> bytes:
    url = f"{daemon_base_url(listen)}/api/v1/query"
    client_timeout = aiohttp.ClientTimeout(total=limit_s, sock_connect=2.0)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(url, params={"format": fmt}, data=sql.encode()) as resp,
        ):
            body = await resp.read()
            if resp.status == 200:
                return body
            try:
                error = orjson.loads(body)["error"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise _DaemonUnreachable(f"{url} answered HTTP {resp.status}, not an mcc daemon") from None
            raise QueryError(str(error))
    except aiohttp.ClientConnectionError as exc:
        raise _DaemonUnreachable(f"nothing answered at {url}: {exc}") from None
    except TimeoutError:
        raise QueryError(
            f"the daemon at {url} did not answer within {limit_s:g}s", store_unavailable=True
        ) from None


async def _query_embedded(sql: str, fmt: str, path: Path, database: str, why: str) -> bytes:
    if not await asyncio.to_thread(path.exists):
        raise QueryError(
            f"no mcc daemon answered ({why}) and there is no embedded store at {path}; "
            "start `mcc run` (or point sink.embedded.path at the store)",
            store_unavailable=True,
        )
    sink = EmbeddedSink(path, database, migrate=False)
    try:
        await sink.start()
        return await sink.query(sql, fmt)
    except StoreLockedError:
        raise QueryError(
            f"the data directory {path} is in use by another process, but no mcc daemon answered ({why}); "
            "check that collector.listen (or --listen) matches the running `mcc run`, "
            "or stop the other process",
            store_unavailable=True,
        ) from None
    except SinkError as exc:
        raise QueryError(str(exc)) from None
    finally:
        await sink.close()


async def run_query(
    sql: str,
    *,
    fmt: str,
    listen: str,
    embedded_path: Path,
    database: str,
    limit_s: float = 300.0,
) -> bytes:
    """Run a read-only query through the daemon, or directly on the embedded store if none runs."""
    statement = ensure_read_only(sql)
    check_format(fmt)
    try:
        return await _query_daemon(statement, fmt, listen, limit_s)
    except _DaemonUnreachable as exc:
        return await _query_embedded(statement, fmt, embedded_path, database, str(exc))


def _server_http(ch: ClickHouseConfig, session: aiohttp.ClientSession) -> ClickHouseHttp:
    return ClickHouseHttp(
        session,
        ch.url,
        database=ch.database,
        user=ch.user,
        password=ch.password,
        ca_file=ch.ca_file,
        verify=ch.verify,
        timeout=ch.timeout,
    )


async def query_server(ch: ClickHouseConfig, sql: str, fmt: str) -> bytes:
    """``mcc query`` with ``sink.kind: clickhouse``: read-only statements straight to the server."""
    statement = ensure_read_only(sql)
    check_format(fmt)
    async with aiohttp.ClientSession(trust_env=False) as session:
        try:
            return await _server_http(ch, session).query(statement, fmt)
        except SinkError as exc:
            raise QueryError(str(exc), store_unavailable=exc.retryable and exc.code is None) from None


async def migrate_server(
    ch: ClickHouseConfig, *, dry_run: bool = False, migrations: Sequence[Migration] | None = None
) -> MigrationReport:
    """``mcc migrate`` with ``sink.kind: clickhouse`` (``cluster`` renders ON CLUSTER DDL)."""
    async with aiohttp.ClientSession(trust_env=False) as session:
        http = _server_http(ch, session)
        try:
            return await apply_migrations(
                http.execute, ch.database, migrations, dry_run=dry_run, cluster=ch.cluster
            )
        except SinkError as exc:
            raise QueryError(str(exc), store_unavailable=exc.retryable and exc.code is None) from None


async def migrate_store(
    *,
    embedded_path: Path,
    database: str,
    listen: str,
    dry_run: bool = False,
    migrations: Sequence[Migration] | None = None,
) -> MigrationReport:
    """Apply pending migrations to the embedded store (``dry_run``: list them).

    While a daemon holds the store, a dry run reads the applied versions through its query API;
    a real run is refused with what to do, because the daemon migrates at start-up.
    """
    sink = EmbeddedSink(embedded_path, database, migrate=False)
    try:
        await sink.start()
        return await apply_migrations(sink.execute, database, migrations, dry_run=dry_run)
    except StoreLockedError as exc:
        if not dry_run:
            raise QueryError(
                f"{exc}. The daemon applies migrations when it starts: restart `mcc run` "
                "(or stop it and run `mcc migrate`)",
                store_unavailable=True,
            ) from None
    finally:
        await sink.close()

    async def via_daemon(stmt: str) -> str:
        try:
            return (await _query_daemon(ensure_read_only(stmt), "TabSeparated", listen, 60.0)).decode()
        except _DaemonUnreachable as exc:
            raise QueryError(f"the store is locked and {exc}", store_unavailable=True) from None

    return await apply_migrations(via_daemon, database, migrations, dry_run=True)
