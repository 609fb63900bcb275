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
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
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
from multicloud_collector.providers.records import BillingLine, Instance, ProviderStatus

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


# ---- provider API tables (issue 4): instances, billing, provider_metadata ----------------------

_MICRO = Decimal("0.000001")


def _money(v: Decimal | None) -> str | None:
    """Decimal(18, 6) text: quantized, never a binary float."""
    return None if v is None or not v.is_finite() else str(v.quantize(_MICRO, rounding=ROUND_HALF_EVEN))


def _dt(v: datetime | None) -> float | None:
    return None if v is None else round(v.timestamp(), 3)


def _instance_row(i: Instance, customer: str, observed: float) -> dict[str, Any]:
    return {
        "observed_at": observed,
        "customer": customer,
        "provider": i.provider,
        "account": i.account,
        "instance_id": i.instance_id,
        "name": i.name,
        "region": i.region,
        "zone": i.zone,
        "instance_type": i.instance_type,
        "status": i.status,
        "gpu_model": i.gpu_model,
        "gpu_count": _clamp(i.gpu_count, _U16),
        "vcpus": None if i.vcpus is None else _clamp(i.vcpus, _U32),
        "memory_mib": None if i.memory_mib is None else _clamp(i.memory_mib, _U64),
        "hourly_price": _money(i.hourly_price),
        "currency": i.currency,
        "price_source": str(i.price_source),
        "created_at": _dt(i.created_at),
        "host": i.host,
        "ip": i.ip,
        "labels": dict(i.labels),
    }


def encode_instances(instances: Sequence[Instance], customer: str, observed_ms: int) -> bytes:
    """JSONEachRow for ``instances``; ``observed_ms`` is the version ReplacingMergeTree keeps."""
    observed = observed_ms / 1000
    return b"".join(dumps(_instance_row(i, customer, observed)) + b"\n" for i in instances)


def billing_period(start: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``start``: FOCUS BillingPeriodStart/End."""
    first = start.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return first, nxt


def _billing_row(b: BillingLine, customer: str, observed: float) -> dict[str, Any]:
    period_start, period_end = billing_period(b.period_start)
    return {
        "observed_at": observed,
        "customer": customer,
        "provider": b.provider,
        "account": b.account,
        "line_id": b.line_id,
        "charge_category": str(b.kind),
        "charge_description": b.description,
        "billing_period_start": _dt(period_start),
        "billing_period_end": _dt(period_end),
        "charge_period_start": _dt(b.period_start),
        "charge_period_end": _dt(b.period_end),
        "billed_cost": _money(b.amount) or "0",
        "billing_currency": b.currency,
        "resource_id": b.resource_id,
        "note": b.note,
    }


def encode_billing(lines: Sequence[BillingLine], customer: str, observed_ms: int) -> bytes:
    """JSONEachRow for ``billing`` (FOCUS-style column names; amounts as Decimal text)."""
    observed = observed_ms / 1000
    return b"".join(dumps(_billing_row(b, customer, observed)) + b"\n" for b in lines)


def encode_provider_status(rows: Sequence[ProviderStatus]) -> bytes:
    """JSONEachRow for ``provider_metadata``."""
    out = []
    for s in rows:
        duration = float(s.duration_ms)
        row = {
            "last_attempt": _dt(s.last_attempt),
            "customer": s.customer,
            "provider": s.provider,
            "account": s.account,
            "adapter": s.adapter,
            "display_name": s.display_name,
            "capabilities": list(s.capabilities),
            "base_url": s.base_url,
            "job": s.job,
            "last_status": s.status,
            "last_error": s.error,
            "last_success": _dt(s.last_success),
            "instances": _clamp(s.instances, _U32),
            "billing_lines": _clamp(s.billing_lines, _U32),
            "duration_ms": duration if math.isfinite(duration) else 0.0,
        }
        out.append(dumps(row) + b"\n")
    return b"".join(out)
