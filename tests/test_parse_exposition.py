"""Parser behaviour on real fixtures and on the corners of the text formats."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from multicloud_collector.model import ScrapeLimits
from multicloud_collector.normalize.series import series_id
from multicloud_collector.parse import ExpositionError, ParsedExposition, SeriesCache, parse_exposition

FIXTURES = Path(__file__).parent / "fixtures" / "exposition"
NODE = (FIXTURES / "node_exporter_1.5.prom").read_bytes()
DCGM = (FIXTURES / "h100_8gpu.prom").read_bytes()
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def parse(
    body: bytes | str,
    cache: SeriesCache | None = None,
    content_type: str | None = None,
    limits: ScrapeLimits | None = None,
) -> ParsedExposition:
    data = body.encode() if isinstance(body, str) else body
    return parse_exposition(
        data,
        content_type=content_type,
        limits=limits or ScrapeLimits(),
        cache=cache if cache is not None else SeriesCache("t"),
    )


def as_dict(p: ParsedExposition) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.metric, s.labels): v for s, v in zip(p.series, p.values, strict=True)}


def test_node_fixture_matches_prometheus_client() -> None:
    p = parse(NODE)
    expected = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(NODE.decode())
        for s in fam.samples
    }
    got = as_dict(p)
    assert len(p.series) == 507 and p.duplicates == 0 and p.filtered == 0
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == value or (math.isnan(value) and math.isnan(got[key]))
    assert p.types["go_gc_duration_seconds"] == "summary"
    assert p.types["go_memstats_alloc_bytes_total"] == "counter"
    assert got[("node_boot_time_seconds", ())] == 1.795684985e09
    assert p.lines == 1073 and p.nbytes == len(NODE) and not p.openmetrics
    assert p.timestamps_ms == [None] * 507


def test_dcgm_fixture_values_and_labels() -> None:
    p = parse(DCGM)
    assert len(p.series) == 168
    got = {(s.metric, s.labels_dict["gpu"]): v for s, v in zip(p.series, p.values, strict=True)}
    assert got[("DCGM_FI_DEV_POWER_USAGE", "3")] == 567.855088
    assert got[("DCGM_FI_DEV_SM_CLOCK", "7")] == 345
    assert got[("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "3")] == 0.557904
    first = p.series[0]
    assert first.labels_dict["modelName"] == "NVIDIA H100 80GB HBM3"
    assert first.series_id == series_id("t", first.metric, first.labels)
    assert list(first.labels) == sorted(first.labels)


def test_warm_cache_gives_identical_result_and_reuses_series() -> None:
    cache = SeriesCache("t", (("customer", "c1"),))
    cold = parse(NODE, cache)
    for _ in range(10):  # crosses generation rotations
        warm = parse(NODE, cache)
        assert warm.series == cold.series and warm.values == cold.values and warm.types == cold.types
    assert all(a is b for a, b in zip(warm.series, cold.series, strict=True))


def test_labels_escapes_trailing_comma_blanks_and_special_values() -> None:
    body = (
        "# TYPE m gauge\n"
        'm{a="x\\\\y",b="q\\"t",c="l1\\nl2",d="keep\\t"} 1\n'
        'm{a="2",} +Inf\n'
        'm{ a = "3" , b="4" } -Inf\n'
        "m{} NaN\n"
        "other_metric 1.5e3\n"
        "colon:name 7 1700000000000\n"
        "tabbed\t8\n"
        "   \n"
        'm{a="utf ✓ value"} 9\n'
    )
    for cache in (SeriesCache("t"), None):
        p = parse(body, cache)
        labels = [s.labels_dict for s in p.series]
        assert labels[0] == {"a": "x\\y", "b": 'q"t', "c": "l1\nl2", "d": "keep\\t"}
        assert labels[1] == {"a": "2"} and labels[2] == {"a": "3", "b": "4"}
        assert p.values[1] == math.inf and p.values[2] == -math.inf and math.isnan(p.values[3])
        assert p.series[3].labels == () and p.values[4] == 1500.0
        assert p.timestamps_ms[5] == 1_700_000_000_000 and p.timestamps_ms[4] is None
        assert p.series[6].metric == "tabbed" and p.values[6] == 8
        assert labels[7] == {"a": "utf ✓ value"}
    # Second pass over a warm cache takes the fast paths; same answer.
    cache = SeriesCache("t")
    assert parse(body, cache).values[4:] == parse(body, cache).values[4:]


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("ok 1\nbad-name 1\n", 2, "unexpected character"),
        ("ok 1\n9metric 1\n", 2, "expected a metric name"),
        ('m{a="1" 1\n', 1, "expected ',' or '}'"),
        ('m{a="1"\n', 1, "unterminated label set"),
        ('m{a="1\n', 1, "unterminated label value"),
        ("m{a=1} 1\n", 1, "double-quoted"),
        ("m{a} 1\n", 1, "expected '='"),
        ('m{1a="x"} 1\n', 1, "invalid label name '1a'"),
        ('m{a:b="x"} 1\n', 1, "invalid label name"),
        ("m{,} 1\n", 1, "expected a label name"),
        ("m{" + "\n", 1, "unterminated label set"),
        ('m{__name__="x"} 1\n', 1, "reserved"),
        ('m{a="1",a="2"} 1\n', 1, "duplicate label name"),
        ("m\n", 1, "missing value"),
        ('m{a="1"}\n', 1, "missing value"),
        ("m abc\n", 1, "invalid value"),
        ("m 1_000\n", 1, "invalid value"),
        ("m 0x10\n", 1, "invalid value"),
        ("m \u0661\n", 1, "non-ASCII"),
        ("m 1 2 3\n", 1, "unexpected text"),
        ("m 1 1.5\n", 1, "invalid timestamp"),
        ("m 1 1_0\n", 1, "invalid timestamp"),
        ("\n\n# TYPE m\n", 3, "TYPE line must be"),
        ("# TYPE 1m gauge\n", 1, "invalid metric name"),
        ("# TYPE m nonsense\n", 1, "unknown metric type"),
        ('m 1 # {a="b"} 1\n', 1, "unexpected text"),
    ],
)
def test_parse_errors_name_the_line(body: str, line: int, fragment: str) -> None:
    for cache in (SeriesCache("t"), _warm_cache_for(body)):
        with pytest.raises(ExpositionError) as info:
            parse(body, cache)
        assert info.value.reason == "parse"
        assert info.value.line == line
        assert str(info.value).startswith(f"line {line}: ")
        assert fragment in str(info.value)


def _warm_cache_for(body: str) -> SeriesCache:
    """A cache already holding every valid series text of ``body`` (exercises the fast paths)."""
    cache = SeriesCache("t")
    for raw in body.splitlines():
        for candidate in (raw.rpartition(" ")[0], raw[: raw.rfind("}") + 1], raw.split(" ")[0]):
            with contextlib.suppress(ExpositionError):
                parse(candidate + " 1\n", cache)
    return cache


def test_invalid_utf8_is_an_encoding_error_with_line() -> None:
    with pytest.raises(ExpositionError) as info:
        parse(b'a 1\nb{x="\xff"} 1\n')
    assert info.value.reason == "encoding" and info.value.line == 2


def test_duplicates_keep_first() -> None:
    body = 'm{a="1"} 1\nm{a="1"} 2\nm{b="2",a="1"} 3\nm{a="1",b="2"} 4\nn 5\n'
    p = parse(body)
    assert p.values == [1, 3, 5] and p.duplicates == 2
    assert p.timestamps_ms == [None, None, None]


def test_duplicates_with_timestamps_stay_aligned() -> None:
    p = parse("a 1 100\na 2 200\nb 3 300\n")
    assert p.values == [1, 3] and p.timestamps_ms == [100, 300] and p.duplicates == 1


def test_extra_labels_override_and_scraped_value_is_exported() -> None:
    cache = SeriesCache("t", (("instance", "host:9100"), ("job", "node")))
    p = parse('m{job="evil",exported_job="x",z="1"} 1\n', cache)
    assert p.series[0].labels_dict == {
        "instance": "host:9100",
        "job": "node",
        "exported_job": "x",
        "exported_exported_job": "evil",
        "z": "1",
    }


def test_series_filter_counts_filtered_and_is_cached() -> None:
    calls: list[str] = []

    def keep(metric: str, labels: tuple[tuple[str, str], ...]) -> bool:
        calls.append(metric)
        return not metric.startswith("go_")

    cache = SeriesCache("t", series_filter=keep)
    first = parse(NODE, cache)
    assert first.filtered > 0 and all(not s.metric.startswith("go_") for s in first.series)
    seen_calls = len(calls)
    second = parse(NODE, cache)
    assert second.filtered == first.filtered and len(calls) == seen_calls


def test_openmetrics_eof_timestamps_and_exemplars() -> None:
    body = (
        "# TYPE req counter\n# UNIT req_seconds seconds\n# HELP req help\n"
        'req_total{code="200"} 10 1700000000.5\n'
        'req_total{code="500"} 1 # {trace_id="abc"} 1 1700000000.1\n'
        "req_created 1699999999.0\n"
        "# EOF\n"
    )
    cache = SeriesCache("t")
    for _ in range(2):
        p = parse(body, cache, OM)
        assert p.openmetrics and p.types == {"req": "counter"}
        assert p.values == [10, 1, 1699999999.0]
        assert p.timestamps_ms == [1_700_000_000_500, None, None]


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("a 1\n", 1, "does not end with '# EOF'"),
        ("a 1\n# EOF\nb 2\n", 3, "after '# EOF'"),
        ("a 1 nan\n# EOF\n", 1, "invalid timestamp"),
        ("a 1 1e400\n# EOF\n", 1, "invalid timestamp"),
        ('a 1 #{x="y"} 2\n# EOF\n', 1, "malformed exemplar"),
        ("a 1 # nope\n# EOF\n", 1, "malformed exemplar"),
    ],
)
def test_openmetrics_errors(body: str, line: int, fragment: str) -> None:
    with pytest.raises(ExpositionError) as info:
        parse(body, content_type=OM)
    assert info.value.line == line and fragment in str(info.value)


def test_eof_is_a_plain_comment_in_text_format() -> None:
    assert parse("a 1\n# EOF\nb 2\n").values == [1, 2]


@pytest.mark.parametrize(
    ("limits", "body", "reason", "line"),
    [
        (ScrapeLimits(body_size_bytes=10), "a 1\nb 2\nc 3\n", "body_limit", None),
        (ScrapeLimits(line_length=8), "a 1\nbbbbbbbbbb 2\n", "line_length", 2),
        (ScrapeLimits(line_length=8), 'a 1\nb{x="✓✓"} 2\n', "line_length", 2),
        (ScrapeLimits(samples_per_scrape=2), "a 1\nb 2\nc 3\n", "sample_limit", None),
        (ScrapeLimits(labels_per_series=1), 'a{x="1",y="2"} 1\n', "label_limit", 1),
        (ScrapeLimits(label_name_length=3), 'a{long="1"} 1\n', "label_name_length", 1),
        (ScrapeLimits(label_value_length=3), 'a{x="long"} 1\n', "label_value_length", 1),
        (ScrapeLimits(label_value_length=5), 'a{x="✓✓"} 1\n', "label_value_length", 1),
    ],
)
def test_limits(limits: ScrapeLimits, body: str, reason: str, line: int | None) -> None:
    with pytest.raises(ExpositionError) as info:
        parse(body, limits=limits)
    assert info.value.reason == reason and info.value.line == line


def test_limits_zero_means_unlimited_and_within_limits_pass() -> None:
    unlimited = ScrapeLimits(0, 0, 0, 0, 0, 0)
    assert len(parse(NODE, limits=unlimited).values) == 507
    assert parse('a{x="✓"} 1\n', limits=ScrapeLimits(label_value_length=3, line_length=64)).values == [1]


def test_changed_limits_invalidate_cache() -> None:
    cache = SeriesCache("t")
    parse('a{x="1",y="2"} 1\n', cache)
    with pytest.raises(ExpositionError):
        parse('a{x="1",y="2"} 1\n', cache, limits=ScrapeLimits(labels_per_series=1))


def test_cache_evicts_series_not_seen_for_a_few_scrapes() -> None:
    cache = SeriesCache("t", rotate_every=2)
    parse("gone 1\nstays 1\n", cache)
    assert len(cache) == 2
    for _ in range(4):
        parse("stays 2\n", cache)
    assert "gone" not in cache.young and "gone" not in cache.old
    assert "stays" in cache.young


def test_cache_max_entries_rotates_early() -> None:
    cache = SeriesCache("t", rotate_every=1000, max_entries=5)
    parse("".join(f"m{i} 1\n" for i in range(10)), cache)
    parse("x 1\n", cache)
    assert len(cache.young) <= 1 and len(cache.old) == 10
    parse("y 1\n", cache)
    assert len(cache) == 12


def test_exposition_error_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ExpositionError("nope", "x")
    assert str(ExpositionError("parse", "plain")) == "plain"
