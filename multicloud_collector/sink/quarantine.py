"""A bounded dead-letter file for rows the server rejected as data errors.

Why: a row that can never be parsed must neither block the rows behind it nor vanish without a
trace (the silent-drop failure mode of several collectors). Each quarantined row becomes one JSON
line with the table, the batch token, the error code and the (redacted, truncated) server message,
so an operator can inspect, fix and re-insert it. The file is bounded by ``max_bytes``; once full,
further rows are refused and counted as dropped (reason ``quarantine_full``) until someone empties
it, because silently rotating away evidence would defeat the point.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import structlog

from multicloud_collector.observe import NullObserver, Observer
from multicloud_collector.secrets import redact
from multicloud_collector.sink.events import DeliveryObserver, delivery_observer

log = structlog.get_logger(__name__)

QUARANTINE_FILE = "quarantine.jsonl"
MAX_ERROR_CHARS = 500


class Quarantine:
    def __init__(
        self, directory: str | Path, *, max_bytes: int = 100 << 20, observer: Observer | None = None
    ) -> None:
        self.path = Path(directory).expanduser() / QUARANTINE_FILE
        self.max_bytes = max_bytes
        self.observer: Observer = observer if observer is not None else NullObserver()
        self.events: DeliveryObserver = delivery_observer(observer)
        self._lock = asyncio.Lock()

    async def add(
        self, table: str, token: str, rows: Sequence[bytes], *, code: int | None, error: str
    ) -> int:
        """Store rows (JSONEachRow lines); returns how many were stored (the rest count as dropped)."""
        if not rows:
            return 0
        message = redact(error)[:MAX_ERROR_CHARS]
        now = time.time()
        lines = [
            orjson.dumps(
                {
                    "quarantined_at": now,
                    "table": table,
                    "token": token,
                    "code": code,
                    "error": message,
                    "row": row.decode("utf-8", "replace"),
                }
            )
            + b"\n"
            for row in rows
        ]
        async with self._lock:
            stored = await asyncio.to_thread(self._append, lines)
        if stored:
            self.events.rows_quarantined(table, stored)
            log.error(
                "rows_quarantined", table=table, rows=stored, code=code, file=str(self.path), error=message
            )
        if stored < len(rows):
            self.observer.rows_dropped(table, "quarantine_full", len(rows) - stored)
            log.error(
                "quarantine_full",
                table=table,
                rows=len(rows) - stored,
                file=str(self.path),
                max_bytes=self.max_bytes,
            )
        return stored

    def _append(self, lines: list[bytes]) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            size = self.path.stat().st_size if self.path.exists() else 0
            take = 0
            for line in lines:
                if size + len(line) > self.max_bytes:
                    break
                size += len(line)
                take += 1
            if take:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, b"".join(lines[:take]))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return take
        except OSError as exc:
            log.error("quarantine_write_failed", file=str(self.path), error=exc.strerror)
            return 0
