"""Property tests: the parser round-trips what it should and fails only with ExpositionError.

The strongest property is the equivalence of the fast paths with the full parser: a body parsed
with a cache warmed on a similar body must give exactly what a cold cache gives, error or not.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multicloud_collector.model import ScrapeLimits
from multicloud_collector.parse import ExpositionError, ParsedExposition, SeriesCache, parse_exposition

NAMES = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
LABEL_NAMES = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True)
LABEL_VALUES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
VALUES = st.floats(allow_nan=True, allow_infinity=True)
OM = "application/openmetrics-text"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _render_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


samples_strategy = st.lists(
    st.tuples(
        NAMES,
        st.dictionaries(LABEL_NAMES, LABEL_VALUES, max_size=4),
        VALUES,
        st.one_of(st.none(), st.integers(-(2**53), 2**53)),
    ),
    max_size=12,
)


def _run(body: bytes, cache: SeriesCache, content_type: str | None = None) -> ParsedExposition | str:
    try:
        return parse_exposition(body, content_type=content_type, limits=ScrapeLimits(), cache=cache)
    except ExpositionError as exc:
        return f"{exc.reason}:{exc.line}"


def _same(a: ParsedExposition | str, b: ParsedExposition | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return (
        a.series == b.series
        and a.timestamps_ms == b.timestamps_ms
        and a.types == b.types
        and (a.duplicates, a.filtered, a.lines) == (b.duplicates, b.filtered, b.lines)
        and [repr(v) for v in a.values] == [repr(v) for v in b.values]
    )


@given(samples_strategy, st.booleans())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_roundtrip_cold_and_warm(
    samples: list[tuple[str, dict[str, str], float, int | None]], om: bool
) -> None:
    lines = []
    for name, labels, value, stamp in samples:
        block = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}" if labels else ""
        ts = "" if stamp is None else (f" {stamp / 1000}" if om else f" {stamp}")
        lines.append(f"{name}{block} {_render_value(value)}{ts}\n")
    body = ("".join(lines) + ("# EOF\n" if om else "")).encode()
    cache = SeriesCache("t")
    content_type = OM if om else None
    cold = _run(body, cache, content_type)
    warm = _run(body, cache, content_type)
    assert isinstance(cold, ParsedExposition)
    assert _same(cold, warm)
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, int | None]] = {}
    for name, labels, value, stamp in samples:
        key = (name, tuple(sorted(labels.items())))
        if key not in expected:
            ts = stamp if not om or stamp is None else round(float(f"{stamp / 1000}") * 1000)
            expected[key] = (value, ts)
    got = {
        (s.metric, s.labels): (v, t)
        for s, v, t in zip(cold.series, cold.values, cold.timestamps_ms, strict=True)
    }
    assert got.keys() == expected.keys()
    for key, (value, ts) in expected.items():
        assert repr(got[key][0]) == repr(value) and got[key][1] == ts
    assert cold.duplicates == len(samples) - len(expected)


VALID = (
    '# TYPE m gauge\nm{a="1",b="x y"} 1\nm{a="2"} 2 1000\nn 3\nn_total{c="} 4"} 5\n'
    'o{a="1"} NaN\n# HELP n help text\n'
)
ALPHABET = st.sampled_from(list(' \t\n#{}=",.:_aAbm0159-+eEIinfNa\\✓\x00\r'))


@given(st.integers(0, len(VALID)), st.integers(0, 4), st.text(ALPHABET, max_size=6), st.booleans())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_mutations_fast_paths_agree_with_full_parser(pos: int, cut: int, insert: str, om: bool) -> None:
    mutated = VALID[:pos] + insert + VALID[pos + cut :]
    if om:
        mutated += "# EOF\n"
    body = mutated.encode()
    content_type = OM if om else None
    warm_cache = SeriesCache("t")
    _run((VALID + ("# EOF\n" if om else "")).encode(), warm_cache, content_type)
    assert _same(_run(body, SeriesCache("t"), content_type), _run(body, warm_cache, content_type))


@given(st.binary(max_size=200), st.booleans())
@settings(max_examples=300)
def test_arbitrary_bytes_only_raise_exposition_error(body: bytes, om: bool) -> None:
    cache = SeriesCache("t")
    for _ in range(2):
        result = _run(body, cache, OM if om else None)
        assert isinstance(result, str | ParsedExposition)


@given(st.text(ALPHABET, max_size=80), st.booleans())
@settings(max_examples=300)
def test_arbitrary_text_only_raise_exposition_error(text: str, om: bool) -> None:
    cache = SeriesCache("t")
    first = _run(text.encode(), cache, OM if om else None)
    second = _run(text.encode(), cache, OM if om else None)
    assert _same(first, second)
