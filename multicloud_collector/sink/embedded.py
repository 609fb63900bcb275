"""The embedded ClickHouse store (chDB) behind the ``Sink`` protocol.

Why a dedicated single thread: chDB calls block for milliseconds to seconds (they release the
GIL, but would stall the event loop if awaited directly), and one connection accepts only one
streaming insert at a time. One executor thread that owns the one connection serializes every
call without locks. chDB allows a single data directory per process and a single process per
directory; the second process gets a cryptic ``Code: 36``, which is turned into
``StoreLockedError`` with a message saying what to do.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from multicloud_collector.migrations import Migration, MigrationReport, apply_migrations, check_database_name
from multicloud_collector.observe import NullObserver, Observer
from multicloud_collector.sink.base import EncodedBatch, SinkError

log = structlog.get_logger(__name__)

T = TypeVar("T")

INSTALL_HINT = "the embedded store needs `pip install 'multicloud-collector[embedded]'`"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FORMAT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


class StoreLockedError(SinkError):
    """Another process holds the data directory."""

    def __init__(self, path: Path, pid: int | None = None) -> None:
        who = f" (pid {pid})" if pid else ""
        super().__init__(
            f"the data directory {path} is in use by another mcc process{who} "
            "(is `mcc run` running? query through it with `mcc query`)",
            retryable=False,
            code=36,
        )
        self.path = path
        self.pid = pid


class EmbeddedUnavailableError(SinkError):
    """chDB is not installed."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT, retryable=False)


def _lock_holder(path: Path) -> tuple[bool, int | None]:
    """Whether ``<path>/status`` is flock-ed by someone, and the pid written in it."""
    status = path / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            locked = True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            locked = False
        pid: int | None = None
        try:
            m = re.search(rb"PID:\s*(\d+)", os.read(fd, 4096))
            pid = int(m.group(1)) if m else None
        except OSError:
            pass
        return locked, pid
    finally:
        os.close(fd)


class EmbeddedSink:
    """chDB store at ``path``; ``start()`` opens it and applies migrations (unless ``migrate=False``)."""

    def __init__(
        self,
        path: str | Path,
        database: str = "mcc",
        observer: Observer | None = None,
        *,
        migrate: bool = True,
        migrations: Sequence[Migration] | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        if "?" in str(self.path):
            raise ValueError(
                f"embedded store path {self.path}: '?' is not allowed (chDB reads options after it)"
            )
        self.database = check_database_name(database)
        self.observer: Observer = observer if observer is not None else NullObserver()
        self.migrate = migrate
        self.migrations = migrations
        self.migration_report: MigrationReport | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: Any = None
        self._state = "starting"

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._conn is not None:
            return
        self._state = "starting"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcc-chdb")
        try:
            await self._run(self._open)
            if self.migrate:
                self.migration_report = await apply_migrations(self.execute, self.database, self.migrations)
        except BaseException:
            await self.close()
            raise
        self._state = "writing"
        log.info("embedded_store_opened", path=str(self.path), database=self.database)

    def _open(self) -> None:
        try:
            chdb = importlib.import_module("chdb")
        except ImportError:
            raise EmbeddedUnavailableError() from None
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = chdb.connect(str(self.path))
        except Exception as exc:
            raise self._open_error(exc) from None

    def _open_error(self, exc: Exception) -> SinkError:
        text = str(exc)
        locked, pid = _lock_holder(self.path)
        if locked or ("Error initializing EmbeddedServer" in text and (self.path / "status").exists()):
            return StoreLockedError(self.path, pid)
        if "already initialized with path" in text:
            return SinkError(
                f"cannot open {self.path}: this process already has another embedded store open "
                f"(chDB allows one data directory per process): {text}",
                retryable=False,
                code=36,
            )
        return SinkError(f"cannot open the embedded store at {self.path}: {text}", retryable=False)

    async def close(self) -> None:
        """Close the connection (releasing the directory lock) and stop the thread."""
        executor, self._executor = self._executor, None
        if executor is not None:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)
        self._state = "down"

    def state(self) -> str:
        return self._state

    # -- statements ---------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise SinkError("the embedded store is not open (call start() first)", retryable=True)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _conn_or_raise(self) -> Any:
        if self._conn is None:
            raise SinkError("the embedded store is not open (call start() first)", retryable=True)
        return self._conn

    def _insert(self, batch: EncodedBatch) -> int:
        conn = self._conn_or_raise()
        head = (
            f"INSERT INTO {self.database}.{batch.table} SETTINGS insert_deduplication_token='{batch.token}'"
        )
        try:
            with conn.send_insert(head, "JSONEachRow") as ins:
                ins.append(batch.body)
                rows: int = ins.finish().rows_written
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError.from_message(str(exc)) from None
        return rows

    async def insert(self, batch: EncodedBatch) -> None:
        if not _NAME_RE.match(batch.table):
            raise SinkError(f"invalid table name {batch.table!r}", retryable=False)
        if not _TOKEN_RE.match(batch.token):
            raise SinkError(f"invalid deduplication token {batch.token[:80]!r}", retryable=False)
        started = time.perf_counter()
        try:
            await self._run(self._insert, batch)
        except SinkError as exc:
            if self._conn is not None and exc.retryable:  # a rejected batch is not a store outage
                self._state = "retrying"
            raise
        self._state = "writing"
        log.debug(
            "embedded_insert",
            table=batch.table,
            rows=batch.rows,
            seconds=round(time.perf_counter() - started, 4),
        )

    def _query(self, sql: str, fmt: str) -> bytes:
        conn = self._conn_or_raise()
        try:
            result = conn.query(sql, fmt)
        except Exception as exc:
            raise SinkError.from_message(str(exc)) from None
        data: bytes = result.bytes() if result is not None else b""
        return data

    async def query(self, sql: str, fmt: str = "PrettyCompact") -> bytes:
        """Run one statement and return its output in ClickHouse format ``fmt``."""
        if not _FORMAT_RE.match(fmt):
            raise SinkError(f"invalid output format {fmt!r}", retryable=False)
        return await self._run(self._query, sql, fmt)

    async def execute(self, sql: str) -> str:
        """Run one statement (DDL or query) and return its output as text (TabSeparated)."""
        return (await self.query(sql, "TabSeparated")).decode("utf-8", "replace")
