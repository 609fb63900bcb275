"""Money as ``Decimal`` and timestamps as aware UTC ``datetime``, from whatever a provider sends.

APIs send money as strings ("12.34"), JSON floats (0.1), or integer cents (Lambda); floats are
converted through ``str()`` so 0.1 stays 0.1 and never becomes 0.1000000000000000055511151231257827.
Timestamps arrive as ISO-8601 with ``Z``/offsets/fractions, space-separated dates, or epoch s/ms.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_EPOCH_MS_THRESHOLD = 100_000_000_000
_CENT = Decimal(100)


def parse_money(value: str | int | float | Decimal | None, *, cents: bool = False) -> Decimal | None:
    """A ``Decimal`` amount, or None for missing/empty/unparseable/non-finite input.

    ``cents=True`` divides by 100 (integer-cents fields). Strings may carry a leading currency
    sign ("$1.50") and thousands separators ("1,234.50"); both are dropped.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        amount = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip().replace(",", "").lstrip("$€£").strip()
        if not text:
            return None
        try:
            amount = Decimal(text)
        except InvalidOperation:
            return None
    else:
        return None
    if not amount.is_finite():
        return None
    return amount / _CENT if cents else amount


def parse_time(value: str | int | float | None) -> datetime | None:
    """An aware UTC ``datetime``, or None for missing/empty/unparseable input.

    Naive ISO strings are taken as UTC (providers that omit the offset mean UTC).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return _from_epoch(float(text))
    except ValueError:
        pass
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime | None:
    if not math.isfinite(seconds):
        return None
    if abs(seconds) >= _EPOCH_MS_THRESHOLD:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
