"""Durations and sizes: examples, error messages and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1.5s", 1.5),
        (" 10s ", 10.0),
        ("15", 15.0),
        ("0.25", 0.25),
        (15, 15.0),
        (2.5, 2.5),
        ("1d2h3m4s5ms", 93784.005),
    ],
)
def test_parse_duration_examples(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty duration"),
        ("abc", "invalid duration 'abc'"),
        ("15x", "units d, h, m, s, ms"),
        ("-5s", "invalid duration"),
        (-1, "must not be negative"),
        ("30m1h", "largest first"),
        ("1h1h", "largest first"),
        ("1 h", "invalid duration"),
        (True, "invalid duration"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
    ],
)
def test_parse_duration_rejects(text: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=None) as exc:
        parse_duration(text)  # type: ignore[arg-type]
    assert fragment in str(exc.value)


def test_parse_duration_rejects_non_string_types() -> None:
    with pytest.raises(ValueError, match="expected a string or number"):
        parse_duration([1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("16MiB", 16 * 2**20),
        ("64KiB", 64 * 1024),
        ("1GiB", 2**30),
        ("1TiB", 2**40),
        ("10MB", 10**7),
        ("2kb", 2000),
        ("3GB", 3 * 10**9),
        ("512B", 512),
        ("512", 512),
        ("1.5KiB", 1536),
        (" 4 MiB ", 4 * 2**20),
        (4096, 4096),
        (8.0, 8),
        (0, 0),
    ],
)
def test_parse_size_examples(text: str | int, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("16XB", "unknown unit 'XB'"),
        ("MiB", "invalid size 'MiB'"),
        ("", "invalid size"),
        (-1, "must not be negative"),
        (1.5, "whole"),
        (True, "invalid size"),
        ([1], "expected a string or integer"),
        ("1,5MiB", "invalid size"),
    ],
)
def test_parse_size_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_size(value)  # type: ignore[arg-type]
    assert fragment in str(exc.value)


def test_format_examples() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.5) == "500ms"
    assert format_duration(0) == "0s"
    assert format_size(16 * 2**20) == "16MiB"
    assert format_size(1000) == "1000B"
    assert format_size(0) == "0B"
    with pytest.raises(ValueError):
        format_duration(-1)
    with pytest.raises(ValueError):
        format_size(-1)


@given(st.integers(min_value=0, max_value=10**10))
def test_duration_round_trips_whole_milliseconds(ms: int) -> None:
    seconds = ms / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)


@given(st.integers(min_value=0, max_value=2**50))
def test_size_round_trips(nbytes: int) -> None:
    assert parse_size(format_size(nbytes)) == nbytes


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["d", "h", "m", "s", "ms"]))
def test_duration_single_unit_scales(n: int, unit: str) -> None:
    factor = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * factor)


@given(st.text(alphabet="abcxyzKMGiB!@# -_", min_size=1, max_size=12))
def test_garbage_is_rejected_with_value_error(text: str) -> None:
    # Nothing here is a number followed by a known unit, so both parsers must refuse it cleanly.
    with pytest.raises(ValueError):
        parse_duration(text)
    with pytest.raises(ValueError):
        parse_size(text)


@given(st.text(max_size=20))
def test_parsers_never_raise_anything_but_value_error(text: str) -> None:
    for parser in (parse_duration, parse_size):
        try:
            result = parser(text)
        except ValueError:
            continue
        assert result >= 0
