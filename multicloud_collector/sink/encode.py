"""Rows → JSONEachRow bytes for the ``samples``, ``gpu_samples`` and ``scrape_log`` tables.

Why JSONEachRow: the same bytes feed chDB's ``send_insert`` and a ClickHouse server's HTTP insert,
named fields survive schema additions, and orjson makes it the cheapest encoding measured
(research/clickhouse.md). The hot path is ``samples``: every target yields a block of hundreds of
samples per scrape whose series rarely change, so the constant part of each row (context, metric,
labels, series id) is encoded once per series and cached; a row is then prefix + value + tail.

Timestamps go out as decimal seconds (``1700000000.123``): chDB reads an integer as *seconds*, so
integer milliseconds would be silently wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from multicloud_collector.model import (
    GPU_METRIC_COLUMNS,
    GpuSample,
    SampleBlock,
    ScrapeReport,
    Series,
    TargetContext,
)

_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF
_U64 = 0xFFFF_FFFF_FFFF_FFFF


def ts_text(ts_ms: int) -> bytes:
    """Exact decimal seconds with millisecond precision, e.g. ``1700000000.123``."""
    sign = b"-" if ts_ms < 0 else b""
    sec, ms = divmod(abs(int(ts_ms)), 1000)
    return b"%s%d.%03d" % (sign, sec, ms)


_SURROGATES = re.compile("[\ud800-\udfff]")


def _clean(value: Any) -> Any:
    """Replace lone surrogates (undecodable bytes) by U+FFFD so that orjson never refuses a row."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def dumps(obj: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return orjson.dumps(_clean(obj))


def _value(v: float) -> bytes:
    # orjson writes NaN/Inf as null (valid JSON); validation removes them before this point.
    return orjson.dumps(v)


class SampleEncoder:
    """Encodes ``SampleBlock``s, caching each series' constant JSON prefix per target context.

    The cache is bounded: past ``max_series`` cached prefixes it is cleared and rebuilt lazily,
    which costs one re-encode per live series and keeps memory flat under series churn.
    """

    def __init__(self, max_series: int = 1_000_000) -> None:
        self.max_series = max_series
        self._cache: dict[TargetContext, dict[int, tuple[Series, bytes]]] = {}
        self._last: dict[TargetContext, tuple[list[Series], list[bytes]]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._cache.clear()
        self._last.clear()
        self._size = 0

    def _prefix(self, ctx: TargetContext, s: Series, per_ctx: dict[int, tuple[Series, bytes]]) -> bytes:
        if self._size >= self.max_series:
            self.clear()
            per_ctx = self._cache.setdefault(ctx, {})
        head = dumps(
            {
                "customer": ctx.customer,
                "provider": ctx.provider,
                "account": ctx.account,
                "target": ctx.target,
                "source": ctx.source,
                "metric": s.metric,
                "labels": dict(s.labels),
                "series_id": s.series_id & _U64,
            }
        )
        prefix = head[:-1] + b',"value":'
        if s.series_id not in per_ctx:
            self._size += 1
        per_ctx[s.series_id] = (s, prefix)
        return prefix

    def _prefixes(self, ctx: TargetContext, series: list[Series]) -> list[bytes]:
        """Prefix per series; a target scraped again with the same series list costs one compare."""
        last = self._last.get(ctx)
        if last is not None and last[0] == series:  # identity shortcut per element, in C
            return last[1]
        per_ctx = self._cache.get(ctx)
        if per_ctx is None:
            per_ctx = self._cache[ctx] = {}
        out: list[bytes] = []
        append = out.append
        for s in series:
            entry = per_ctx.get(s.series_id)
            if entry is not None and (entry[0] is s or entry[0] == s):
                append(entry[1])
            else:
                append(self._prefix(ctx, s, per_ctx))
                per_ctx = self._cache[ctx]
        self._last[ctx] = (list(series), out)
        return out

    def encode_block(self, block: SampleBlock) -> bytes:
        """JSONEachRow lines for the ``samples`` table, one per value of the block."""
        n = len(block.values)
        if len(block.series) != n or (block.flags and len(block.flags) != n):
            raise ValueError(
                f"sample block of target {block.ctx.target}: {len(block.series)} series, "
                f"{n} values and {len(block.flags)} flags do not line up"
            )
        if n == 0:
            return b""
        prefixes = self._prefixes(block.ctx, block.series)
        values = _values(block.values)
        ts = ts_text(block.ts_ms)
        parts: list[bytes] = [b""] * (3 * n)
        parts[0::3] = prefixes
        parts[1::3] = values
        if not block.flags or not any(block.flags):
            parts[2::3] = [b',"flags":0,"ts":%s}\n' % ts] * n
        else:
            tails: dict[int, bytes] = {}
            for i, f in enumerate(block.flags):
                tail = tails.get(f)
                if tail is None:
                    tail = tails[f] = b',"flags":%d,"ts":%s}\n' % (int(f) & 0xFF, ts)
                parts[3 * i + 2] = tail
        return b"".join(parts)


def _values(values: Sequence[float]) -> list[bytes]:
    """Each value as JSON text; one orjson call for the whole list (numbers hold no commas)."""
    try:
        out = orjson.dumps(values)[1:-1].split(b",")
    except TypeError:  # not a list/tuple orjson knows
        out = []
    if len(out) != len(values):
        out = [_value(v) for v in values]
    return out


_default_encoder = SampleEncoder()


def encode_block(block: SampleBlock) -> bytes:
    """JSONEachRow for ``samples`` with the process-wide series prefix cache."""
    return _default_encoder.encode_block(block)


def _opt_float(v: float | None) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


GPU_INDEX_UNKNOWN = _U16  # stored when the exporter gave no usable ``gpu`` label (model: -1)


def _gpu_row(g: GpuSample) -> dict[str, Any]:
    index = g.gpu_index if 0 <= g.gpu_index < _U16 else GPU_INDEX_UNKNOWN
    metrics: Mapping[str, float] = g.metrics
    row: dict[str, Any] = {
        "ts": g.ts_ms / 1000,
        "customer": g.customer,
        "provider": g.provider,
        "account": g.account,
        "target": g.target,
        "host": g.host,
        "gpu_index": index,
        "gpu_uuid": g.gpu_uuid,
        "gpu_model": g.gpu_model,
        "mig_instance": g.mig_instance,
        "mig_profile": g.mig_profile,
        "driver_version": g.driver_version,
        "pci_bus_id": g.pci_bus_id,
        "namespace": g.namespace,
        "pod": g.pod,
        "container": g.container,
    }
    for col in GPU_METRIC_COLUMNS:
        row[col] = _opt_float(metrics.get(col))
    return row


def encode_gpus(rows: Sequence[GpuSample]) -> bytes:
    """JSONEachRow for ``gpu_samples``; metrics missing or non-finite become NULL."""
    return b"".join(dumps(_gpu_row(g)) + b"\n" for g in rows)


def _clamp(v: int, hi: int) -> int:
    return max(0, min(int(v), hi))


def _report_row(r: ScrapeReport) -> dict[str, Any]:
    c = r.ctx
    duration = float(r.duration_ms)
    return {
        "ts": r.ts_ms / 1000,
        "customer": c.customer,
        "provider": c.provider,
        "account": c.account,
        "target": c.target,
        "kind": c.kind,
        "url": r.url,
        "status": str(r.status.value if hasattr(r.status, "value") else r.status),
        "error": r.error,
        "error_reason": r.error_reason,
        "duration_ms": duration if math.isfinite(duration) else 0.0,
        "samples": _clamp(r.samples, _U32),
        "bytes": _clamp(r.bytes, _U64),
        "dropped": _clamp(r.dropped, _U32),
    }


def encode_reports(reports: Sequence[ScrapeReport]) -> bytes:
    """JSONEachRow for ``scrape_log``; counters are clamped to their column's range."""
    return b"".join(dumps(_report_row(r)) + b"\n" for r in reports)
