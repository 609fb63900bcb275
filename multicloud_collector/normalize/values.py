"""Value validation of a ``SampleBlock`` before it is encoded for the store.

Dropped values are counted by reason rather than logged one by one: a broken exporter can emit
thousands per second, and the counts are what an operator needs (they feed
``Observer.samples_invalid``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from multicloud_collector.model import SampleBlock, Series
from multicloud_collector.normalize.dcgm import is_dcgm_sentinel


class ValueFlag(enum.IntFlag):
    """Why a value is suspicious; stored in ``SampleBlock.flags`` / ``samples.flags``."""

    NAN = 1
    INF = 2
    NEGATIVE = 4
    OUT_OF_RANGE = 8
    SENTINEL = 16


@dataclass(slots=True)
class NormalizeStats:
    total: int = 0
    kept: int = 0
    dropped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1


# Suffix -> family types for which a sample with that suffix can never be negative. "_sum" is
# left out on purpose: histograms and summaries accept negative observations, so their sum can
# legitimately be negative (and decrease).
_MONOTONIC_SUFFIXES: tuple[tuple[str, frozenset[str]], ...] = (
    ("_total", frozenset({"counter"})),
    ("_count", frozenset({"counter", "histogram", "summary", "gaugehistogram"})),
    ("_bucket", frozenset({"histogram", "gaugehistogram"})),
    ("_created", frozenset({"counter", "histogram", "summary"})),
)


def is_non_negative(metric: str, types: Mapping[str, str]) -> bool:
    """True when ``metric`` is a counter or a count/bucket of a histogram-like family."""
    if types.get(metric) == "counter":
        return True
    for suffix, family_types in _MONOTONIC_SUFFIXES:
        if metric.endswith(suffix) and types.get(metric[: -len(suffix)]) in family_types:
            return True
    return False


def validate_block(block: SampleBlock, types: Mapping[str, str]) -> NormalizeStats:
    """Drop values the store must not get, in place; fill ``block.flags`` for what is kept.

    Dropped: NaN and +/-Inf (JSON cannot carry them, consumers rarely want them), negative
    values of counters, and DCGM "blank" sentinels that leaked into the long table. Never
    raises: malformed blocks (mismatched lengths, non-numeric values) are cleaned up, not fatal.
    """
    stats = NormalizeStats()
    try:
        values = list(block.values)
        series = list(block.series)
    except Exception:  # pragma: no cover - only a hostile object would fail to iterate
        block.series, block.values, block.flags = [], [], []
        return stats
    stats.total = len(values)
    suspects = _suspects(values, series)
    if suspects is not None:
        return _validate_suspects(block, series, values, suspects, types, stats)
    kept_series: list[Series] = []
    kept_values: list[float] = []
    for index, raw in enumerate(values):
        reason = _check(series[index] if index < len(series) else None, raw, types)
        if reason is None:
            kept_series.append(series[index])
            kept_values.append(float(raw))
        else:
            stats.drop(reason)
    stats.kept = len(kept_values)
    block.series = kept_series
    block.values = kept_values
    block.flags = [0] * len(kept_values)
    return stats


# Smallest DCGM "blank" sentinel (int32 blank); anything below it cannot be a sentinel.
_SENTINEL_MIN = float(0x7FFFFFF0)
_INF = float("inf")


def _suspects(values: list[float], series: list[Series]) -> list[int] | None:
    """Indices that need a closer look, or None when the whole block needs the slow path.

    The common block is all finite, non-negative floats below the sentinel range: one C-level
    ``sum`` plus one comprehension clears it without a Python call per value (this check used to
    cost as much as parsing).
    """
    if len(values) != len(series):
        return None
    try:
        total = sum(values)
        if total != total or total == _INF or total == -_INF:  # NaN/Inf somewhere (or overflow)
            return None
        return [i for i, v in enumerate(values) if v.__class__ is not float or v < 0 or v >= _SENTINEL_MIN]
    except TypeError:
        return None


def _validate_suspects(
    block: SampleBlock,
    series: list[Series],
    values: list[float],
    suspects: list[int],
    types: Mapping[str, str],
    stats: NormalizeStats,
) -> NormalizeStats:
    dropped: set[int] = set()
    for i in suspects:
        reason = _check(series[i], values[i], types)
        if reason is None:
            values[i] = float(values[i])
        else:
            stats.drop(reason)
            dropped.add(i)
    if dropped:
        series = [s for i, s in enumerate(series) if i not in dropped]
        values = [v for i, v in enumerate(values) if i not in dropped]
    stats.kept = len(values)
    block.series = series
    block.values = values
    block.flags = [0] * len(values)
    return stats


def _check(s: Series | None, raw: object, types: Mapping[str, str]) -> str | None:
    """The drop reason of one value, or None to keep it."""
    if not isinstance(s, Series):
        return "invalid"
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return "invalid"
    try:
        value = float(raw)
    except OverflowError:  # an int too large for a float
        return "out_of_range"
    if value != value:
        return "nan"
    if math.isinf(value):
        return "inf"
    try:
        if value < 0 and is_non_negative(s.metric, types):
            return "negative"
        if s.metric.startswith("DCGM_") and is_dcgm_sentinel(s.metric, value):
            return "sentinel"
    except Exception:  # a broken Mapping must not fail the scrape
        return None
    return None


def reason_flag(reason: str) -> ValueFlag:
    """The flag for a drop reason (for consumers that record dropped values)."""
    return {
        "nan": ValueFlag.NAN,
        "inf": ValueFlag.INF,
        "negative": ValueFlag.NEGATIVE,
        "sentinel": ValueFlag.SENTINEL,
    }.get(reason, ValueFlag.OUT_OF_RANGE)
