"""JSONEachRow encoders: exact fields, cached prefixes, valid JSON for any input."""

from __future__ import annotations

import array
import math
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.model import (
    GPU_METRIC_COLUMNS,
    GpuSample,
    SampleBlock,
    ScrapeReport,
    ScrapeStatus,
    Series,
    TargetContext,
)
from multicloud_collector.sink.encode import (
    SampleEncoder,
    encode_block,
    encode_gpus,
    encode_reports,
    ts_text,
)

CTX = TargetContext("cust", "lambda", "acct", "acct/node/http://h:9100/metrics", "node", "exposition")
TS = 1_700_000_000_123


def rows(data: bytes) -> list[dict[str, object]]:
    assert data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def test_block_rows_carry_context_series_value_flags_and_ts() -> None:
    series = [Series("node_load1", (("instance", "h"), ("job", "node")), 11), Series("up", (), 2**64 - 1)]
    block = SampleBlock(CTX, TS, series, [0.25, 1.0], [0, 4])
    out = rows(encode_block(block))
    assert out == [
        {
            "customer": "cust",
            "provider": "lambda",
            "account": "acct",
            "target": CTX.target,
            "source": "exposition",
            "metric": "node_load1",
            "labels": {"instance": "h", "job": "node"},
            "series_id": 11,
            "value": 0.25,
            "flags": 0,
            "ts": 1700000000.123,
        },
        {
            "customer": "cust",
            "provider": "lambda",
            "account": "acct",
            "target": CTX.target,
            "source": "exposition",
            "metric": "up",
            "labels": {},
            "series_id": 2**64 - 1,
            "value": 1.0,
            "flags": 4,
            "ts": 1700000000.123,
        },
    ]
    assert b'"ts":1700000000.123}' in encode_block(block)  # exact decimal text, not a rounded float


def test_empty_flags_mean_zero_and_empty_block_is_empty() -> None:
    block = SampleBlock(CTX, TS, [Series("a", (), 1)], [3.0], [])
    assert rows(encode_block(block))[0]["flags"] == 0
    assert encode_block(SampleBlock(CTX, TS)) == b""


def test_misaligned_block_names_the_target() -> None:
    block = SampleBlock(CTX, TS, [Series("a", (), 1)], [1.0, 2.0], [])
    with pytest.raises(ValueError, match=r"acct/node/http://h:9100/metrics.*do not line up"):
        encode_block(block)


def test_prefix_cache_reuses_and_detects_id_collisions() -> None:
    enc = SampleEncoder()
    s = Series("m", (("a", "1"),), 5)
    enc.encode_block(SampleBlock(CTX, TS, [s], [1.0], [0]))
    assert len(enc) == 1
    enc.encode_block(SampleBlock(CTX, TS + 1000, [Series("m", (("a", "1"),), 5)], [2.0], [0]))
    assert len(enc) == 1  # equal series, different object: cache hit
    other = Series("m", (("a", "2"),), 5)  # same id, different labels: must not reuse the prefix
    out = rows(enc.encode_block(SampleBlock(CTX, TS, [other], [3.0], [0])))
    assert out[0]["labels"] == {"a": "2"}
    ctx2 = TargetContext("other", "aws", "acct", "t2", "node", "exposition")
    out2 = rows(enc.encode_block(SampleBlock(ctx2, TS, [s], [4.0], [0])))
    assert out2[0]["customer"] == "other" and out2[0]["provider"] == "aws"


def test_prefix_cache_is_bounded_and_output_stays_correct() -> None:
    enc = SampleEncoder(max_series=2)
    series = [Series(f"m{i}", (), i) for i in range(5)]
    out = rows(enc.encode_block(SampleBlock(CTX, TS, series, [float(i) for i in range(5)], [])))
    assert [r["metric"] for r in out] == [f"m{i}" for i in range(5)]
    assert [r["value"] for r in out] == [float(i) for i in range(5)]
    assert len(enc) <= 2
    enc.clear()
    assert len(enc) == 0


def test_non_finite_values_and_broken_strings_still_give_valid_json() -> None:
    bad = "x\udcff"  # lone surrogate, as left by surrogateescape decoding
    block = SampleBlock(
        CTX, TS, [Series("m", (("k", bad),), 1), Series(bad, (), 2)], [math.nan, math.inf], []
    )
    out = rows(encode_block(block))
    assert out[0]["value"] is None and out[1]["value"] is None
    assert out[0]["labels"] == {"k": "x\ufffd"} and out[1]["metric"] == "x\ufffd"


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_ts_text_is_exact_milliseconds(ts_ms: int) -> None:
    assert Decimal(ts_text(ts_ms).decode()) * 1000 == ts_ms


label_text = st.text(max_size=20)


def fix(text: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=30),
            st.dictionaries(
                st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10),
                label_text,
                max_size=4,
            ),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(min_value=0, max_value=255),
        ),
        max_size=20,
    ),
    st.integers(min_value=0, max_value=4_000_000_000_000),
)
def test_any_block_round_trips_through_json(
    items: list[tuple[str, dict[str, str], float, int]], ts_ms: int
) -> None:
    series = [Series(m, tuple(sorted(lbl.items())), i) for i, (m, lbl, _, _) in enumerate(items)]
    block = SampleBlock(CTX, ts_ms, series, [v for _, _, v, _ in items], [f for *_, f in items])
    data = encode_block(block)
    out = [orjson.loads(line) for line in data.splitlines()]
    assert len(out) == len(items)
    for row, (m, lbl, v, f) in zip(out, items, strict=True):
        assert row["metric"] == fix(m)
        assert row["labels"] == {fix(k): fix(x) for k, x in lbl.items()}
        assert row["value"] == v and row["flags"] == f
        assert Decimal(str(row["ts"])) * 1000 == ts_ms


def gpu(**kw: object) -> GpuSample:
    base: dict[str, object] = {
        "ts_ms": TS,
        "customer": "cust",
        "provider": "coreweave",
        "account": "acct",
        "target": "t",
        "host": "node-1",
        "gpu_index": 3,
        "gpu_uuid": "GPU-abc",
        "gpu_model": "NVIDIA H100 80GB HBM3",
    }
    base.update(kw)
    return GpuSample(**base)  # type: ignore[arg-type]


def test_gpu_rows_have_every_column_and_null_for_missing_or_non_finite() -> None:
    g = gpu(
        mig_instance="1",
        pod="trainer-0",
        metrics={"gpu_util_percent": 97.0, "power_watts": math.nan, "bogus": 1.0, "energy_mj": 12.5},
    )
    (row,) = rows(encode_gpus([g]))
    assert row["gpu_index"] == 3 and row["mig_instance"] == "1" and row["pod"] == "trainer-0"
    assert row["ts"] == 1700000000.123
    assert row["gpu_util_percent"] == 97.0 and row["energy_mj"] == 12.5
    assert row["power_watts"] is None and "bogus" not in row
    assert all(col in row for col in GPU_METRIC_COLUMNS)
    assert encode_gpus([]) == b""


def test_unknown_gpu_index_is_stored_as_65535_not_rejected() -> None:
    # normalize/dcgm gives -1 when the exporter has no usable `gpu` label; the row is still valid.
    out = rows(encode_gpus([gpu(gpu_index=-1), gpu(gpu_index=70_000), gpu(gpu_index=0)]))
    assert [r["gpu_index"] for r in out] == [65535, 65535, 0]


def test_reports_encode_status_and_clamp_counters() -> None:
    ok = ScrapeReport(TS, CTX, "http://h:9100/metrics", ScrapeStatus.OK, 12.5, samples=10, bytes=2048)
    err = ScrapeReport(
        TS,
        CTX,
        "http://h:9100/metrics",
        ScrapeStatus.ERROR,
        math.inf,
        samples=2**40,
        error="timeout after 5s",
        error_reason="timeout",
        dropped=-3,
    )
    a, b = rows(encode_reports([ok, err]))
    assert a == {
        "ts": 1700000000.123,
        "customer": "cust",
        "provider": "lambda",
        "account": "acct",
        "target": CTX.target,
        "kind": "node",
        "url": "http://h:9100/metrics",
        "status": "ok",
        "error": "",
        "error_reason": "",
        "duration_ms": 12.5,
        "samples": 10,
        "bytes": 2048,
        "dropped": 0,
    }
    assert b["status"] == "error" and b["error_reason"] == "timeout"
    assert b["duration_ms"] == 0.0 and b["samples"] == 2**32 - 1 and b["dropped"] == 0


def test_reused_series_list_is_safe_against_in_place_changes() -> None:
    enc = SampleEncoder()
    series = [Series("a", (), 1), Series("b", (), 2)]
    block = SampleBlock(CTX, TS, series, [1.0, 2.0], [])
    first = enc.encode_block(block)
    assert enc.encode_block(block) == first  # steady state: same list, same bytes
    series[1] = Series("c", (("k", "v"),), 3)  # the parser's list changed in place
    out = rows(enc.encode_block(block))
    assert [(r["metric"], r["labels"], r["series_id"]) for r in out] == [("a", {}, 1), ("c", {"k": "v"}, 3)]


def test_values_of_any_sequence_type_encode_the_same() -> None:
    series = [Series("a", (), 1), Series("b", (), 2), Series("c", (), 3)]
    expected = encode_block(SampleBlock(CTX, TS, series, [0.5, -2.0, 1e300], []))
    for values in ((0.5, -2.0, 1e300), array.array("d", [0.5, -2.0, 1e300])):
        block = SampleBlock(CTX, TS, series, values, [])  # type: ignore[arg-type]
        assert encode_block(block) == expected
