from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.model import SampleBlock, Series, TargetContext
from multicloud_collector.normalize.values import (
    NormalizeStats,
    ValueFlag,
    is_non_negative,
    reason_flag,
    validate_block,
)

CTX = TargetContext("c1", "p", "a1", "a1/node/x", "node", "exposition")


def block(pairs: list[tuple[str, object]]) -> SampleBlock:
    series = [Series(m, (), i) for i, (m, _) in enumerate(pairs)]
    return SampleBlock(CTX, 0, series, [v for _, v in pairs])  # type: ignore[misc]


def test_drops_nan_inf_negative_counters_and_sentinels() -> None:
    types = {"c": "counter", "h": "histogram", "g": "gauge", "req": "counter", "s": "summary"}
    b = block(
        [
            ("g", 1.0),
            ("g", math.nan),
            ("g", math.inf),
            ("g", -math.inf),
            ("g", -5.0),  # gauges may be negative
            ("c", -1.0),
            ("req_total", -1.0),
            ("h_bucket", -1.0),
            ("h_count", -2.0),
            ("h_sum", -3.0),  # negative observations are legal
            ("s_count", -1.0),
            ("untyped_total", -1.0),  # no TYPE: not known to be a counter
            ("DCGM_FI_DEV_GPU_UTIL", float(0x7FFFFFF0)),
            ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", 140737488355328.0),
            ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 8e12),
            ("c", 3),
        ]
    )
    stats = validate_block(b, types)
    assert stats.total == 16 and stats.kept == 6 and stats.dropped == 10
    assert stats.by_reason == {"nan": 1, "inf": 2, "negative": 5, "sentinel": 2}
    assert b.values == [1.0, -5.0, -3.0, -1.0, 8e12, 3.0]
    assert [s.metric for s in b.series] == [
        "g",
        "g",
        "h_sum",
        "untyped_total",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "c",
    ]
    assert b.flags == [0] * 6
    assert all(isinstance(v, float) for v in b.values)


def test_malformed_blocks_do_not_raise() -> None:
    b = block([("g", "1"), ("g", True), ("g", 10**400), ("g", 2.0)])
    b.values.append(7.0)  # more values than series
    stats = validate_block(b, {})
    assert stats.total == 5 and stats.kept == 1 and b.values == [2.0]
    assert stats.by_reason == {"invalid": 3, "out_of_range": 1}


def test_broken_types_mapping_does_not_raise() -> None:
    class Broken(dict[str, str]):
        def get(self, *args: object) -> str:  # type: ignore[override]
            raise RuntimeError("boom")

    b = block([("c_total", -1.0)])
    assert validate_block(b, Broken()).kept == 1


def test_is_non_negative_and_flags() -> None:
    assert is_non_negative("x_created", {"x": "counter"})
    assert not is_non_negative("x_sum", {"x": "histogram"})
    assert reason_flag("nan") is ValueFlag.NAN and reason_flag("whatever") is ValueFlag.OUT_OF_RANGE
    assert NormalizeStats().by_reason == {}


TYPES = st.dictionaries(
    st.sampled_from(["a", "a_total", "b", "DCGM_FI_DEV_GPU_UTIL"]),
    st.sampled_from(["counter", "gauge", "histogram", "summary", "untyped", "x"]),
)
METRICS = st.sampled_from(["a", "a_total", "a_count", "a_bucket", "b", "DCGM_FI_DEV_GPU_UTIL", "DCGM_X"])


@given(st.lists(st.tuples(METRICS, st.floats() | st.integers() | st.none() | st.text(max_size=2))), TYPES)
def test_property_never_crashes_and_counts_add_up(
    pairs: list[tuple[str, object]], types: dict[str, str]
) -> None:
    b = block(pairs)
    stats = validate_block(b, types)
    assert stats.kept + stats.dropped == stats.total == len(pairs)
    assert sum(stats.by_reason.values()) == stats.dropped
    assert len(b.values) == len(b.series) == len(b.flags) == stats.kept
    assert all(math.isfinite(v) for v in b.values)
