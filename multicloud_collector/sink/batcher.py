"""Per-table batching between the scrapers and a ``Sink``.

Why this shape: stores want few large inserts, scrapers produce many small blocks, and a store
outage must neither grow memory without bound nor lose rows silently. So each table has an open
buffer (sealed into a batch on rows/bytes/age) and a queue of sealed batches drained by one writer
task, which keeps inserts of a table in order and never concurrent. All buffered and queued bytes
count against ``max_buffer_bytes``; when it is full ``add`` waits briefly (backpressure) and then
drops the *oldest* data, reporting the exact row count. Every row ends up written, dropped with a
reason, or still buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from multicloud_collector.observe import Observer
from multicloud_collector.sink.base import EncodedBatch, Sink, SinkError
from multicloud_collector.sink.spool import SpoolError

log = structlog.get_logger(__name__)


class BatchSpool(Protocol):
    """Where failed batches go instead of an in-memory retry loop (``sink.spool.Spool``)."""

    opened: bool

    @property
    def backlog(self) -> bool: ...

    async def put(self, batch: EncodedBatch) -> None: ...


@dataclass(slots=True)
class _Chunk:
    data: bytes
    rows: int
    added: float  # loop time, for max_age
    wall: float  # time.time(), comparable with EncodedBatch.created when dropping the oldest


@dataclass(slots=True)
class _Table:
    name: str
    chunks: deque[_Chunk] = field(default_factory=deque)
    buf_rows: int = 0
    buf_bytes: int = 0
    pending: deque[EncodedBatch] = field(default_factory=deque)
    attempting: EncodedBatch | None = None  # batch inside a sink.insert call right now
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    writer: asyncio.Task[None] | None = None

    @property
    def queued_rows(self) -> int:
        return self.buf_rows + sum(b.rows for b in self.pending)

    @property
    def queued_bytes(self) -> int:
        return self.buf_bytes + sum(b.nbytes for b in self.pending)


def _log_writer_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("batcher_writer_failed", task=task.get_name(), error=repr(task.exception()))


class Batcher:
    def __init__(
        self,
        sink: Sink,
        *,
        max_rows: int = 50_000,
        max_bytes: int = 8 * 1024 * 1024,
        max_age: float = 5.0,
        max_buffer_bytes: int = 256 * 1024 * 1024,
        observer: Observer,
        backpressure_timeout: float = 1.0,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        spool: BatchSpool | None = None,
    ) -> None:
        for name, value in (
            ("max_rows", max_rows),
            ("max_bytes", max_bytes),
            ("max_buffer_bytes", max_buffer_bytes),
        ):
            if value <= 0:
                raise ValueError(f"batcher {name} must be > 0, got {value}")
        if max_age <= 0:
            raise ValueError(f"batcher max_age must be > 0, got {max_age}")
        self.sink = sink
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.max_buffer_bytes = max_buffer_bytes
        self.backpressure_timeout = backpressure_timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.observer = observer
        self.spool = spool
        # a sink that reports its own writes/errors (per part actually written) is not double counted
        self._sink_reports = bool(getattr(sink, "reports_writes", False))
        self._tables: dict[str, _Table] = {}
        self._total_bytes = 0
        self._space = asyncio.Condition()
        self._progress = asyncio.Condition()  # notified when a batch leaves the queue
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    # -- public API ---------------------------------------------------------------------------

    @property
    def buffered_bytes(self) -> int:
        """Bytes held across all tables (open buffers plus queued and in-flight batches)."""
        return self._total_bytes

    def queued_rows(self, table: str) -> int:
        t = self._tables.get(table)
        return t.queued_rows if t else 0

    def start(self) -> None:
        """Start the age-based flusher (call from a running event loop)."""
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._age_loop(), name="mcc-batcher-age")

    async def add(self, table: str, data: bytes, rows: int) -> None:
        """Queue pre-encoded JSONEachRow lines for ``table``; may wait briefly when full."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        if rows <= 0 or not data:
            return
        size = len(data)
        if size > self.max_buffer_bytes:
            self._dropped(table, "buffer_full", rows, detail="data larger than the whole buffer")
            return
        if self._total_bytes + size > self.max_buffer_bytes:
            await self._wait_for_space(size)
            if self._total_bytes + size > self.max_buffer_bytes and not self._drop_oldest(size):
                self._dropped(table, "buffer_full", rows, detail="nothing older to drop")
                return
        t = self._table(table)
        t.chunks.append(_Chunk(data, rows, asyncio.get_running_loop().time(), time.time()))
        t.buf_rows += rows
        t.buf_bytes += size
        self._total_bytes += size
        if t.buf_rows >= self.max_rows or t.buf_bytes >= self.max_bytes:
            self._seal(t)
        self._report_depth(t)

    async def flush(self) -> None:
        """Seal every buffer and wait until all queued batches are written or dropped."""
        for t in list(self._tables.values()):
            self._seal(t)
            if t.pending:
                self._table(t.name)  # revives a writer that died (e.g. an observer raised)
        async with self._progress:
            await self._progress.wait_for(lambda: all(not t.pending for t in self._tables.values()))

    async def close(self, grace: float | None = 30.0) -> None:
        """Flush (up to ``grace`` seconds), then stop; rows still queued are counted as dropped.

        Prefer this over a bare ``flush()`` at shutdown: ``flush()`` waits as long as the store
        is down. A batch whose insert is still running in the store when the grace ends is
        counted as dropped even if the store completes it afterwards.
        """
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), grace)
        self._closed = True
        for t in self._tables.values():
            if t.writer is not None:
                t.writer.cancel()
                # a writer that already died was logged by _log_writer_exit
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t.writer
                t.writer = None
            lost = t.queued_rows
            if lost:
                self._dropped(t.name, "shutdown", lost, detail="sink did not accept them before close")
            t.chunks.clear()
            t.pending.clear()
            t.buf_rows = t.buf_bytes = 0
            self._report_depth(t)
        self._total_bytes = 0

    # -- buffers ------------------------------------------------------------------------------

    def _table(self, name: str) -> _Table:
        t = self._tables.get(name)
        if t is None:
            t = self._tables[name] = _Table(name)
        if t.writer is None or t.writer.done():
            t.writer = asyncio.create_task(self._writer(t), name=f"mcc-batcher-{name}")
            t.writer.add_done_callback(_log_writer_exit)
        return t

    def _seal(self, t: _Table) -> None:
        if not t.chunks:
            return
        body = b"".join(c.data for c in t.chunks)
        batch = EncodedBatch.build(t.name, body, t.buf_rows)
        t.chunks.clear()
        t.buf_rows = t.buf_bytes = 0
        t.pending.append(batch)
        t.wake.set()

    async def _age_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(self.max_age / 4, 1.0)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for t in list(self._tables.values()):
                if t.chunks and now - t.chunks[0].added >= self.max_age:
                    self._seal(t)

    async def _wait_for_space(self, size: int) -> None:
        async with self._space:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._space.wait_for(lambda: self._total_bytes + size <= self.max_buffer_bytes),
                    self.backpressure_timeout,
                )

    def _drop_oldest(self, size: int) -> bool:
        """Drop the oldest droppable data until ``size`` more bytes fit; False if impossible."""
        while self._total_bytes + size > self.max_buffer_bytes:
            oldest: tuple[float, _Table, str] | None = None
            for t in self._tables.values():
                for b in t.pending:
                    if b is not t.attempting:
                        if oldest is None or b.created < oldest[0]:
                            oldest = (b.created, t, "batch")
                        break
                if t.chunks and (oldest is None or t.chunks[0].wall < oldest[0]):
                    oldest = (t.chunks[0].wall, t, "chunk")
            if oldest is None:
                return False
            _, t, what = oldest
            if what == "batch":
                victim = next(b for b in t.pending if b is not t.attempting)
                t.pending.remove(victim)
                self._release(victim.nbytes)
                self._dropped(t.name, "buffer_full", victim.rows, detail="oldest queued batch")
            else:
                chunk = t.chunks.popleft()
                t.buf_rows -= chunk.rows
                t.buf_bytes -= len(chunk.data)
                self._release(len(chunk.data))
                self._dropped(t.name, "buffer_full", chunk.rows, detail="oldest buffered rows")
            self._report_depth(t)
        return True

    def _release(self, nbytes: int) -> None:
        self._total_bytes -= nbytes

    async def _notify(self) -> None:
        async with self._space:
            self._space.notify_all()
        async with self._progress:
            self._progress.notify_all()

    def _dropped(self, table: str, reason: str, rows: int, *, detail: str, error: str | None = None) -> None:
        self.observer.rows_dropped(table, reason, rows)
        log.warning("rows_dropped", table=table, reason=reason, rows=rows, detail=detail, error=error)

    def _report_depth(self, t: _Table) -> None:
        self.observer.queue_depth(t.name, t.queued_rows, t.queued_bytes)

    # -- writer -------------------------------------------------------------------------------

    async def _to_spool(self, t: _Table, batch: EncodedBatch) -> bool:
        """Hand a batch to the disk spool; False (keep it here, retry in memory) if the spool fails."""
        assert self.spool is not None
        t.attempting = batch  # not droppable from memory while the spool writes it
        try:
            await self.spool.put(batch)
        except SpoolError as exc:
            self.observer.sink_error(t.name, f"spool_{exc.reason}")
            log.error("spool_put_failed", table=t.name, rows=batch.rows, reason=exc.reason, error=str(exc))
            return False
        finally:
            t.attempting = None
        if t.pending and t.pending[0] is batch:
            t.pending.popleft()
            self._release(batch.nbytes)
        log.debug("batch_spooled", table=t.name, rows=batch.rows, token=batch.token)
        return True

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.retry_max, self.retry_base * (2 ** min(attempt, 30))))

    async def _writer(self, t: _Table) -> None:
        while True:
            if not t.pending:
                t.wake.clear()
                await self._notify()
                await t.wake.wait()
                continue
            batch = t.pending[0]
            attempt = 0
            if self.spool is not None and self.spool.opened and self.spool.backlog:
                await self._to_spool(t, batch)  # keep order: queue behind the spooled backlog
            while t.pending and t.pending[0] is batch:
                t.attempting = batch
                started = time.perf_counter()
                try:
                    await self.sink.insert(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    err = (
                        exc
                        if isinstance(exc, SinkError)
                        else SinkError(f"{type(exc).__name__}: {exc}", retryable=True)
                    )
                    reason = err.reason if isinstance(exc, SinkError) else type(exc).__name__
                    if not self._sink_reports:
                        self.observer.sink_error(t.name, reason)
                    t.attempting = None
                    if self.spool is not None and await self._to_spool(t, batch):
                        break
                    if not err.retryable:
                        t.pending.popleft()
                        self._release(batch.nbytes)
                        self._dropped(
                            t.name,
                            "permanent_error",
                            batch.rows,
                            detail="store rejected the batch",
                            error=str(err),
                        )
                        break
                    delay = self._backoff(attempt)
                    attempt += 1
                    log.warning(
                        "insert_retry",
                        table=t.name,
                        rows=batch.rows,
                        attempt=attempt,
                        delay=round(delay, 3),
                        error=str(err),
                    )
                    t.attempting = None
                    await asyncio.sleep(delay)
                    continue
                finally:
                    t.attempting = None
                t.pending.popleft()
                self._release(batch.nbytes)
                if not self._sink_reports:
                    seconds = time.perf_counter() - started
                    self.observer.rows_written(t.name, batch.rows, batch.nbytes, seconds)
                break
            self._report_depth(t)
            await self._notify()
