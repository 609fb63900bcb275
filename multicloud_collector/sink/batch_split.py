"""Deterministic ways to cut an ``EncodedBatch`` into smaller ones.

Why deterministic: a batch may be retried after a crash, from the spool, by another process. Its
pieces must then carry the *same* deduplication tokens as the first time, or the server would
store the pieces that already landed twice. Child tokens are therefore derived from the parent
token and the cut (``sha256(parent:how)``), never from time or randomness.

* ``split_by_day``: an INSERT is atomic only within one partition; tables are partitioned by UTC
  day, so a batch spanning midnight is cut there (one atomic block per day).
* ``halves``: bisection to isolate rows the server rejects as data errors.
"""

from __future__ import annotations

import hashlib
import re

from multicloud_collector.sink.base import EncodedBatch

DAY_S = 86_400
_TS_RE = re.compile(rb'"ts":(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)')


def child_token(parent: str, how: str) -> str:
    return hashlib.sha256(f"{parent}:{how}".encode()).hexdigest()


def rows_of(body: bytes) -> list[bytes]:
    """JSONEachRow lines, each without its newline; blank lines dropped."""
    return [line for line in body.split(b"\n") if line.strip()]


def _child(parent: EncodedBatch, how: str, lines: list[bytes]) -> EncodedBatch:
    body = b"\n".join(lines) + b"\n"
    return EncodedBatch(
        table=parent.table,
        body=body,
        rows=len(lines),
        token=child_token(parent.token, how),
        created=parent.created,
    )


def split_by_day(batch: EncodedBatch) -> list[EncodedBatch]:
    """``[batch]`` if all rows' ``ts`` fall in one UTC day, else one batch per day (first-seen order)."""
    stamps = _TS_RE.findall(batch.body)
    if not stamps:
        return [batch]
    values = list(map(float, stamps))
    if int(min(values) // DAY_S) == int(max(values) // DAY_S):
        return [batch]
    groups: dict[int, list[bytes]] = {}
    for line in rows_of(batch.body):
        m = _TS_RE.search(line)
        day = int(float(m.group(1)) // DAY_S) if m else 0
        groups.setdefault(day, []).append(line)
    return [_child(batch, f"day{day}", lines) for day, lines in groups.items()]


def halves(batch: EncodedBatch) -> tuple[EncodedBatch, EncodedBatch] | None:
    """The two halves of a batch (by rows), or None when it has a single row."""
    lines = rows_of(batch.body)
    if len(lines) < 2:
        return None
    mid = len(lines) // 2
    return _child(batch, "L", lines[:mid]), _child(batch, "R", lines[mid:])
