"""Money and time parsing: Decimal from every shape providers send, UTC-aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.providers.money import parse_money, parse_time


@pytest.mark.parametrize(
    ("value", "cents", "expected"),
    [
        ("12.34", False, Decimal("12.34")),
        (" 1,234.50 ", False, Decimal("1234.50")),
        ("$0.75", False, Decimal("0.75")),
        (0.1, False, Decimal("0.1")),
        (-100.55, False, Decimal("-100.55")),
        (60, False, Decimal(60)),
        (149, True, Decimal("1.49")),
        ("2490", True, Decimal("24.90")),
        (Decimal("3.5"), False, Decimal("3.5")),
    ],
)
def test_parse_money_shapes(value: object, cents: bool, expected: Decimal) -> None:
    assert parse_money(value, cents=cents) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [None, "", "  ", "abc", "1.2.3", float("nan"), float("inf"), "NaN", True, [1]]
)
def test_parse_money_rejects(value: object) -> None:
    assert parse_money(value) is None  # type: ignore[arg-type]


def test_float_goes_through_str_not_binary() -> None:
    assert parse_money(0.1) + parse_money(0.2) == Decimal("0.3")  # type: ignore[operator]


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9))
def test_parse_money_round_trips_strings(d: Decimal) -> None:
    assert parse_money(str(d)) == d


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_parse_money_float_equals_its_repr(f: float) -> None:
    assert parse_money(f) == Decimal(repr(f))


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_cents_divide_exactly(n: int) -> None:
    assert parse_money(n, cents=True) * 100 == n  # type: ignore[operator]


@given(st.text(max_size=20))
def test_parse_money_never_raises(text: str) -> None:
    result = parse_money(text)
    assert result is None or result.is_finite()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-07-21T18:37:44Z", datetime(2020, 7, 21, 18, 37, 44, tzinfo=UTC)),
        ("2020-10-10T01:56:20+00:00", datetime(2020, 10, 10, 1, 56, 20, tzinfo=UTC)),
        ("2020-10-10T03:56:20+02:00", datetime(2020, 10, 10, 1, 56, 20, tzinfo=UTC)),
        ("2021-08-31 20:00:00", datetime(2021, 8, 31, 20, 0, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456789Z", None),  # nanoseconds: beyond datetime precision
        ("2024-01-02T03:04:05.123Z", datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
        (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1_700_000_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (None, None),
        ("", None),
        ("yesterday", None),
        (float("nan"), None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    got = parse_time(value)  # type: ignore[arg-type]
    if expected is None and isinstance(value, str) and value.startswith("2024-01-02T03:04:05.123456789"):
        # Python 3.11 rejects 9 fractional digits; either None or truncated microseconds is fine.
        assert got is None or got.replace(microsecond=0) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        return
    assert got == expected
    if got is not None:
        assert got.tzinfo is UTC


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_parse_time_iso_round_trip(dt: datetime) -> None:
    assert parse_time(dt.isoformat()) == dt
    assert parse_time(dt.isoformat().replace("+00:00", "Z")) == dt


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_parse_time_offsets_normalize_to_utc(naive: datetime, offset_min: int) -> None:
    aware = naive.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    got = parse_time(aware.isoformat())
    assert got == aware and got is not None and got.utcoffset() == timedelta(0)


@given(st.integers(min_value=100_000_000, max_value=4_000_000_000))  # 1973..2096: ms are unambiguous
def test_parse_time_epoch_seconds_and_millis_agree(seconds: int) -> None:
    assert parse_time(seconds) == parse_time(seconds * 1000) == datetime.fromtimestamp(seconds, UTC)


@given(st.text(max_size=30))
def test_parse_time_never_raises(text: str) -> None:
    got = parse_time(text)
    assert got is None or got.tzinfo is UTC
