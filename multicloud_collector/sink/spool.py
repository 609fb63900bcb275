"""A disk spool (write-ahead buffer) for batches the server could not take right now.

Why: an outage of ClickHouse or a crash of the collector must lose nothing that was accepted.
A batch handed to ``put`` is appended to a segment file and fsynced before ``put`` returns; it
leaves the spool only after the server acknowledged it (``done(record, delivered=True)``), in the
order it came in. The exact bytes and the deduplication token are stored, so a batch replayed
after a crash (delivered but not yet acknowledged here) is dropped by the server's insert
deduplication instead of duplicated.

The consumed position (``ack`` file: segment and offset) is persisted after every delivery; a
segment file is deleted once every record in it is delivered. Bounded by ``max_bytes``: policy
``drop_oldest`` deletes the oldest segment and counts its undelivered rows per table, ``block``
makes ``put`` wait for room (backpressure). Only one process may use a spool directory (flock).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
import structlog

from multicloud_collector.observe import NullObserver, Observer
from multicloud_collector.sink.base import EncodedBatch
from multicloud_collector.sink.events import DeliveryObserver, delivery_observer
from multicloud_collector.sink.spool_format import (
    RecordError,
    ScanEnd,
    encode_record,
    read_record,
    scan_segment,
    segment_name,
    segment_seq,
)

log = structlog.get_logger(__name__)

Policy = Literal["drop_oldest", "block"]
POLICIES: tuple[str, ...] = ("drop_oldest", "block")
ACK_FILE = "ack"
LOCK_FILE = "lock"


class SpoolError(Exception):
    """The spool cannot take a batch (disk full, unwritable directory, in use, too large)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class _Entry:
    offset: int
    size: int
    rows: int
    table: str
    created: float


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int = 0
    entries: deque[_Entry] = field(default_factory=deque)  # undelivered records, oldest first


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """The head record handed to the replayer; give it back with ``done``."""

    seq: int
    offset: int
    batch: EncodedBatch


@dataclass(frozen=True, slots=True)
class SpoolStats:
    bytes: int
    max_bytes: int
    segments: int
    batches: int
    rows: int
    oldest_created: float | None


class Spool:
    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        policy: Policy = "drop_oldest",
        observer: Observer | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"spool policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if segment_bytes <= 0 or max_bytes < 2 * segment_bytes:
            raise ValueError("spool max_bytes must be at least twice segment_bytes")
        self.directory = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.policy: Policy = policy
        self.observer: Observer = observer if observer is not None else NullObserver()
        self.events: DeliveryObserver = delivery_observer(observer)
        self._segments: deque[_Segment] = deque()
        self._write_fd: int | None = None
        self._lock_fd: int | None = None
        self._next_seq = 1
        self._bytes = self._batches = self._rows = 0
        self._inflight: tuple[int, int] | None = None  # (seq, offset) handed out by peek
        self._orphan: _Entry | None = None  # in-flight record whose segment was dropped meanwhile
        self._cond = asyncio.Condition()
        self._nonempty = asyncio.Event()
        self.opened = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Take the directory, recover every segment, drop what was already delivered."""
        async with self._cond:
            await asyncio.to_thread(self._open_sync)
        self.opened = True
        if self._batches:
            self._nonempty.set()

    def _open_sync(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot use spool directory {self.directory}: {exc.strerror}", "open") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SpoolError(
                f"spool directory {self.directory} is in use by another mcc process", "locked"
            ) from None
        self._lock_fd = fd
        ack_seq, ack_off = self._read_ack()
        seqs = sorted(s for p in self.directory.iterdir() if (s := segment_seq(p.name)) is not None)
        for seq in seqs:
            self._recover_segment(seq, ack_seq, ack_off)
        self._next_seq = max([ack_seq, *seqs]) + 1
        for seg in list(self._segments):
            if not seg.entries:
                self._unlink(seg)
        if self._batches:
            log.info("spool_recovered", dir=str(self.directory), batches=self._batches, rows=self._rows)

    def _read_ack(self) -> tuple[int, int]:
        try:
            data = orjson.loads((self.directory / ACK_FILE).read_bytes())
            return int(data["segment"]), int(data["offset"])
        except FileNotFoundError:
            return 0, 0
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("spool_ack_unreadable", dir=str(self.directory))
            return 0, 0

    def _recover_segment(self, seq: int, ack_seq: int, ack_off: int) -> None:
        path = self.directory / segment_name(seq)
        scan = scan_segment(str(path))
        if scan.end is not ScanEnd.CLEAN:
            cut = path.stat().st_size - scan.valid_end
            with open(path, "r+b") as f:
                f.truncate(scan.valid_end)
                os.fsync(f.fileno())
            event = "torn_record" if scan.end is ScanEnd.TORN else "corrupt_record"
            self.events.spool_event(event)
            if scan.lost_rows:
                self.observer.rows_dropped("unknown", "spool_corrupt", scan.lost_rows)
            log.warning(
                f"spool_{event}",
                segment=path.name,
                offset=scan.valid_end,
                bytes_cut=cut,
                rows_lost=scan.lost_rows,
            )
        seg = _Segment(seq, path, size=scan.valid_end)
        for r in scan.records:
            if seq < ack_seq or (seq == ack_seq and r.offset < ack_off):
                continue  # delivered before the restart
            seg.entries.append(_Entry(r.offset, r.size, r.rows, r.table, r.created))
            self._batches += 1
            self._rows += r.rows
        self._bytes += seg.size
        self._segments.append(seg)

    async def close(self) -> None:
        async with self._cond:
            if self._write_fd is not None:
                os.close(self._write_fd)
                self._write_fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self.opened = False

    # -- state ----------------------------------------------------------------------------------

    @property
    def backlog(self) -> bool:
        """True while undelivered batches wait: new batches must queue behind them (order)."""
        return self._batches > 0

    def stats(self) -> SpoolStats:
        oldest = next((s.entries[0].created for s in self._segments if s.entries), None)
        return SpoolStats(self._bytes, self.max_bytes, len(self._segments), self._batches, self._rows, oldest)

    async def wait_backlog(self) -> None:
        await self._nonempty.wait()

    # -- writing --------------------------------------------------------------------------------

    async def put(self, batch: EncodedBatch) -> None:
        """Append durably; returns once the record is fsynced (or raises ``SpoolError``)."""
        if not self.opened:
            raise SpoolError(f"spool {self.directory} is not open", "closed")
        record = encode_record(batch)
        if len(record) > self.max_bytes // 2:
            raise SpoolError(f"a batch of {len(record)} bytes does not fit the spool", "too_large")
        async with self._cond:
            if self.policy == "block" and not self._fits(len(record)):
                self.events.spool_event("blocked")
                log.warning("spool_full_blocking", dir=str(self.directory), bytes=self._bytes)
                await self._cond.wait_for(lambda: self._fits(len(record)))
            await asyncio.to_thread(self._append_sync, batch, record)
        self._nonempty.set()
        self.events.spool_event("spooled_rows", batch.rows)

    def _fits(self, n: int) -> bool:
        return self._bytes + n <= self.max_bytes

    def _append_sync(self, batch: EncodedBatch, record: bytes) -> None:
        while not self._fits(len(record)):
            if not self._drop_oldest_segment():
                raise SpoolError("spool is full and nothing can be dropped", "full")
        seg = self._segments[-1] if self._segments and self._write_fd is not None else None
        if seg is None or (seg.size + len(record) > self.segment_bytes and seg.size > 0):
            seg = self._new_segment()
        assert self._write_fd is not None
        try:
            written = 0
            while written < len(record):
                written += os.write(self._write_fd, record[written:])
            os.fsync(self._write_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._write_fd, seg.size)  # never leave half a record behind
            self.events.spool_event("write_error")
            reason = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "io_error"
            raise SpoolError(f"cannot write to spool {seg.path}: {exc.strerror}", reason) from None
        seg.entries.append(_Entry(seg.size, len(record), batch.rows, batch.table, batch.created))
        seg.size += len(record)
        self._bytes += len(record)
        self._batches += 1
        self._rows += batch.rows

    def _new_segment(self) -> _Segment:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        seq = self._next_seq
        path = self.directory / segment_name(seq)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            self.events.spool_event("write_error")
            reason = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "io_error"
            raise SpoolError(f"cannot create spool segment {path}: {exc.strerror}", reason) from None
        self._next_seq += 1
        self._write_fd = fd
        seg = _Segment(seq, path)
        self._segments.append(seg)
        return seg

    def _drop_oldest_segment(self) -> bool:
        """Delete the oldest segment, counting its undelivered rows; False when there is none."""
        if not self._segments:
            return False
        seg = self._segments[0]
        lost: dict[str, int] = {}
        for i, e in enumerate(seg.entries):
            if i == 0 and self._inflight == (seg.seq, e.offset):
                self._orphan = e  # its fate is known only when the insert returns
                continue
            lost[e.table] = lost.get(e.table, 0) + e.rows
        self._batches -= len(seg.entries)
        self._rows -= sum(e.rows for e in seg.entries)
        seg.entries.clear()
        if seg is self._segments[-1] and self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        self._unlink(seg)
        for table, rows in lost.items():
            self.observer.rows_dropped(table, "spool_full", rows)
        log.warning("spool_dropped_oldest", segment=seg.path.name, rows=sum(lost.values()), tables=lost)
        return True

    def _unlink(self, seg: _Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
        self._segments.remove(seg)
        self._bytes -= seg.size
        if not self._segments and self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    # -- replay ---------------------------------------------------------------------------------

    async def peek(self) -> SpoolRecord | None:
        """The oldest undelivered batch (read from disk), or None when the spool is empty."""
        while True:
            async with self._cond:
                head = next((s for s in self._segments if s.entries), None)
                if head is None:
                    self._nonempty.clear()
                    return None
                entry = head.entries[0]
                try:
                    batch = await asyncio.to_thread(self._read, head.path, entry.offset)
                except (OSError, RecordError) as exc:
                    self._discard_corrupt(head, entry, str(exc))
                    continue
                self._inflight = (head.seq, entry.offset)
                return SpoolRecord(head.seq, entry.offset, batch)

    @staticmethod
    def _read(path: Path, offset: int) -> EncodedBatch:
        fd = os.open(path, os.O_RDONLY)
        try:
            return read_record(fd, offset)
        finally:
            os.close(fd)

    def _discard_corrupt(self, seg: _Segment, entry: _Entry, why: str) -> None:
        """A record that cannot be read back is counted and skipped, never replayed forever."""
        seg.entries.popleft()
        self._batches -= 1
        self._rows -= entry.rows
        self.events.spool_event("corrupt_record")
        self.observer.rows_dropped(entry.table, "spool_corrupt", entry.rows)
        log.error("spool_corrupt_record", segment=seg.path.name, offset=entry.offset, error=why)
        self._cleanup_and_ack(seg, entry.offset + entry.size)

    async def done(self, rec: SpoolRecord, *, delivered: bool) -> None:
        """Settle a record from ``peek``: delivered ones leave the spool for good."""
        async with self._cond:
            self._inflight = None
            orphan, self._orphan = self._orphan, None
            if orphan is not None and orphan.offset == rec.offset:
                if not delivered:  # its segment was dropped while it was in flight
                    self.observer.rows_dropped(rec.batch.table, "spool_full", rec.batch.rows)
                return
            if not delivered:
                return
            seg = next((s for s in self._segments if s.seq == rec.seq), None)
            if seg is None or not seg.entries or seg.entries[0].offset != rec.offset:
                return
            entry = seg.entries.popleft()
            self._batches -= 1
            self._rows -= entry.rows
            await asyncio.to_thread(self._cleanup_and_ack, seg, entry.offset + entry.size)
            self.events.spool_event("replayed_rows", entry.rows)
            self._cond.notify_all()

    def _cleanup_and_ack(self, seg: _Segment, next_offset: int) -> None:
        writing = self._write_fd is not None and seg is self._segments[-1]
        if not seg.entries and seg in self._segments and (not writing or self._batches == 0):
            self._unlink(seg)
        self._write_ack(seg.seq, next_offset)

    def _write_ack(self, seq: int, offset: int) -> None:
        tmp = self.directory / f"{ACK_FILE}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(orjson.dumps({"segment": seq, "offset": offset}))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / ACK_FILE)
        except OSError as exc:
            # A lost ack only means a re-send after a restart, which the server deduplicates.
            self.events.spool_event("write_error")
            log.warning("spool_ack_write_failed", dir=str(self.directory), error=exc.strerror)
