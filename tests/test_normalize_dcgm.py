from __future__ import annotations

import math
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.model import GPU_METRIC_COLUMNS, ScrapeLimits, Series, TargetContext
from multicloud_collector.normalize.dcgm import (
    DCGM_FP64_BLANK,
    DCGM_INT32_BLANK,
    DCGM_INT64_BLANK,
    FIELDS,
    dcgm_rows,
    is_dcgm_sentinel,
    target_host,
)
from multicloud_collector.parse import ParsedExposition, SeriesCache, parse_exposition

FIXTURE = (Path(__file__).parent / "fixtures" / "exposition" / "h100_8gpu.prom").read_text()
CTX = TargetContext("cust", "lambda", "acct", "acct/dcgm/http://10.0.0.5:9400/metrics", "dcgm", "dcgm")
TS = 1_700_000_000_000


def parse(text: str) -> ParsedExposition:
    cache = SeriesCache(CTX.target)
    return parse_exposition(text.encode(), content_type=None, limits=ScrapeLimits(), cache=cache)


def test_every_mapped_column_exists_in_model() -> None:
    assert {column for column, _ in FIELDS.values()} <= set(GPU_METRIC_COLUMNS)


def test_h100_fixture_gives_eight_rows_with_the_right_values() -> None:
    parsed = parse(FIXTURE)
    result = dcgm_rows(parsed, CTX, TS)
    assert len(result.gpus) == 8 and result.sentinels == 0 and result.out_of_range == 0
    assert [g.gpu_index for g in result.gpus] == list(range(8))
    assert {parsed.series[i].metric for i in result.rest} == {"DCGM_FI_DEV_VGPU_LICENSE_STATUS"}
    g3 = result.gpus[3]
    assert (g3.host, g3.gpu_uuid, g3.gpu_model) == (
        "gpu-node-0017",
        "GPU-07a0ca6e-17fc-37f8-3b8f-9a1d815ef6d1",
        "NVIDIA H100 80GB HBM3",
    )
    assert (g3.driver_version, g3.pci_bus_id, g3.ts_ms, g3.customer) == (
        "535.183.01",
        "00000000:5D:00.0",
        TS,
        "cust",
    )
    assert g3.metrics["power_watts"] == 567.855088
    assert g3.metrics["gpu_util_percent"] == 95
    assert g3.metrics["fb_used_mib"] == 76358 and g3.metrics["fb_free_mib"] == 4699
    assert g3.metrics["energy_mj"] == 2855710149761
    assert g3.metrics["nvlink_bandwidth_total"] == 90827297893
    assert g3.metrics["prof_gr_engine_active"] == 0.557904
    assert g3.metrics["prof_pcie_rx_bytes"] == 15495679609
    assert "prof_sm_active" not in g3.metrics  # not in the fixture: column absent, not zero
    g7 = result.gpus[7]
    assert g7.metrics["sm_clock_mhz"] == 345 and g7.metrics["gpu_temp_c"] == 28
    assert g7.metrics["gpu_util_percent"] == 0


def test_sentinels_are_dropped_and_counted() -> None:
    lines = FIXTURE.splitlines()
    replaced = 0
    for i, line in enumerate(lines):
        if 'gpu="2"' not in line or line.startswith("#"):
            continue
        if line.startswith("DCGM_FI_DEV_GPU_UTIL{"):
            lines[i] = line.rsplit(" ", 1)[0] + f" {DCGM_INT32_BLANK + 2}"  # not supported
        elif line.startswith("DCGM_FI_DEV_POWER_USAGE{"):
            lines[i] = line.rsplit(" ", 1)[0] + f" {DCGM_FP64_BLANK}"
        elif line.startswith("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{"):
            lines[i] = line.rsplit(" ", 1)[0] + f" {DCGM_INT64_BLANK}"
        elif line.startswith("DCGM_FI_PROF_DRAM_ACTIVE{"):
            lines[i] = line.rsplit(" ", 1)[0] + " 1.5"  # out of range ratio
        elif line.startswith("DCGM_FI_DEV_GPU_TEMP{"):
            lines[i] = line.rsplit(" ", 1)[0] + " 400"
        else:
            continue
        replaced += 1
    assert replaced == 5
    result = dcgm_rows(parse("\n".join(lines) + "\n"), CTX, TS)
    assert result.sentinels == 3 and result.out_of_range == 2
    g2 = result.gpus[2].metrics
    for column in ("gpu_util_percent", "power_watts", "energy_mj", "prof_dram_active", "gpu_temp_c"):
        assert column not in g2
    assert g2["sm_clock_mhz"] == 1980 and result.gpus[1].metrics["gpu_util_percent"] == 86


MIG = """\
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-1",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 250.5
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-1",GPU_I_PROFILE="3g.40gb",GPU_I_ID="1",Hostname="n1",\
namespace="ml",pod="train-0",container="main"} 0.75
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-1",GPU_I_PROFILE="3g.40gb",GPU_I_ID="2",Hostname="n1"} 0.25
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-1",GPU_I_PROFILE="3g.40gb",GPU_I_ID="2",Hostname="n1"} 1000
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-1",GPU_I_PROFILE="3g.40gb",GPU_I_ID="2",Hostname="n1",extra="dup"} 2000
"""


def test_mig_instances_get_one_row_each_with_k8s_attribution() -> None:
    result = dcgm_rows(parse(MIG), CTX, TS)
    rows = {(g.mig_instance, g.mig_profile): g for g in result.gpus}
    assert set(rows) == {("", ""), ("1", "3g.40gb"), ("2", "3g.40gb")}
    assert rows[("", "")].metrics == {"power_watts": 250.5}
    one = rows[("1", "3g.40gb")]
    assert (one.namespace, one.pod, one.container) == ("ml", "train-0", "main")
    assert one.metrics == {"prof_gr_engine_active": 0.75}
    assert rows[("2", "3g.40gb")].metrics == {"prof_gr_engine_active": 0.25, "fb_used_mib": 1000}


def test_missing_identity_labels_and_host_fallback() -> None:
    text = (
        'DCGM_FI_DEV_GPU_UTIL{UUID="GPU-x"} 50\n'  # no gpu index, no Hostname
        'DCGM_FI_DEV_GPU_UTIL{gpu="abc"} 10\n'  # unparsable index
        "DCGM_FI_DEV_GPU_UTIL 10\n"  # not about one GPU: rest
        'DCGM_FI_DEV_SM_CLOCK{gpu="0"} -5\n'  # negative quantity
        'DCGM_FI_DEV_SM_CLOCK{gpu="1"} NaN\n'
        'other_metric{gpu="0"} 1\n'
    )
    parsed = parse(text)
    result = dcgm_rows(parsed, CTX, TS)
    assert [(g.host, g.gpu_index, g.gpu_uuid) for g in result.gpus] == [
        ("10.0.0.5", -1, "GPU-x"),
        ("10.0.0.5", -1, ""),
        ("10.0.0.5", 0, ""),
        ("10.0.0.5", 1, ""),
    ]
    assert result.gpus[2].metrics == {} and result.out_of_range == 2
    assert [parsed.series[i].metric for i in result.rest] == ["DCGM_FI_DEV_GPU_UTIL", "other_metric"]


def test_target_host() -> None:
    assert target_host("a/dcgm/http://10.0.0.5:9400/metrics") == "10.0.0.5"
    assert target_host("https://[::1]:9400/metrics") == "::1"
    assert target_host("plain-name") == "plain-name"
    assert target_host("a/http://[bad/x") == "a/http://[bad/x"


def test_is_dcgm_sentinel() -> None:
    assert is_dcgm_sentinel("DCGM_FI_DEV_GPU_UTIL", DCGM_INT32_BLANK)
    assert not is_dcgm_sentinel("DCGM_FI_DEV_GPU_UTIL", 99)
    assert not is_dcgm_sentinel("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", DCGM_INT32_BLANK)
    assert is_dcgm_sentinel("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", float(DCGM_INT64_BLANK + 3))
    assert is_dcgm_sentinel("DCGM_FI_UNKNOWN", DCGM_INT32_BLANK + 3)
    assert not is_dcgm_sentinel("DCGM_FI_UNKNOWN", DCGM_INT32_BLANK + 3.5)
    assert not is_dcgm_sentinel("DCGM_FI_UNKNOWN", DCGM_INT32_BLANK + 100)
    assert is_dcgm_sentinel("DCGM_FI_UNKNOWN", DCGM_FP64_BLANK + 1)
    assert is_dcgm_sentinel("DCGM_FI_UNKNOWN", float(DCGM_INT64_BLANK))
    assert not is_dcgm_sentinel("DCGM_FI_UNKNOWN", 12.0)


LABELS = st.lists(
    st.one_of(
        st.tuples(st.just("gpu"), st.sampled_from(["", "0", "1"])),
        st.tuples(st.sampled_from(["UUID", "Hostname", "GPU_I_ID", "pod", "x"]), st.text(max_size=3)),
    ),
    max_size=5,
)
METRICS = st.sampled_from([*FIELDS, "DCGM_FI_DEV_VGPU_LICENSE_STATUS", "up"])
VALUES = st.floats() | st.sampled_from(
    [float(DCGM_INT32_BLANK), DCGM_FP64_BLANK, float(DCGM_INT64_BLANK), -1.0, 101.0]
)


def _reference(
    items: list[tuple[str, list[tuple[str, str]], float]],
) -> dict[tuple[str, ...], dict[str, float]]:
    """Naive re-statement of the mapping rules, to check the optimized code against."""
    rows: dict[tuple[str, ...], dict[str, float]] = {}
    for metric, labels, value in items:
        d = dict(labels)
        if metric not in FIELDS or not (d.get("gpu") or d.get("UUID")):
            continue
        key = (
            d.get("Hostname") or "h",
            d.get("gpu", ""),
            d.get("UUID", ""),
            d.get("GPU_I_ID", ""),
            d.get("pod", ""),
        )
        row = rows.setdefault(key, {})
        column, kind = FIELDS[metric]
        if math.isfinite(value) and value < kind.sentinel_floor and kind.low <= value <= kind.high:
            row.setdefault(column, value)
    return rows


@given(st.lists(st.tuples(METRICS, LABELS, VALUES), max_size=20))
def test_random_series_match_reference_and_never_crash(
    items: list[tuple[str, list[tuple[str, str]], float]],
) -> None:
    series = [Series(m, tuple(sorted(dict(labels).items())), i) for i, (m, labels, _) in enumerate(items)]
    parsed = ParsedExposition(series, [v for _, _, v in items], [None] * len(items), {}, False, 0, 0, 0, 0)
    ctx = TargetContext("c", "p", "a", "h", "dcgm", "dcgm")
    for _ in range(2):  # second call goes through the identity cache
        result = dcgm_rows(parsed, ctx, TS)
        got = {
            (g.host, "" if g.gpu_index == -1 else str(g.gpu_index), g.gpu_uuid, g.mig_instance, g.pod): dict(
                g.metrics
            )
            for g in result.gpus
        }
        expected = _reference([(m, sorted(dict(labels).items()), v) for m, labels, v in items])
        assert got == expected
        for g in result.gpus:
            assert all(math.isfinite(v) for v in g.metrics.values())
            assert set(g.metrics) <= set(GPU_METRIC_COLUMNS)
        assert len(result.rest) == len(set(result.rest))
