"""NVIDIA dcgm-exporter series to one unified ``GpuSample`` row per GPU (or MIG instance).

Field names and units follow dcgm-exporter's counter files (default-counters.csv,
dcp-metrics-included.csv): clocks in MHz, framebuffer in MiB, power in W, energy in mJ,
``DCGM_FI_PROF_*`` activities as ratios in [0, 1], PCIe/NVLink traffic in bytes (per second).

DCGM reports "blank" (no data / not found / not supported / not permissioned) as huge magic
numbers per field type; they must never reach the store, where they would wreck every average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from multicloud_collector.model import GpuSample, Series, TargetContext

if TYPE_CHECKING:
    from multicloud_collector.parse.exposition import ParsedExposition

DCGM_INT32_BLANK = 0x7FFFFFF0
DCGM_INT64_BLANK = 0x7FFFFFFFFFFFFFF0
DCGM_FP64_BLANK = 140737488355328.0  # 2**47
_INT64_BLANK_FLOAT = float(DCGM_INT64_BLANK)  # rounds to 2**63; nothing valid is that large
_BLANK_WINDOW = 16  # BLANK, NOT_FOUND, NOT_SUPPORTED, NOT_PERMISSIONED and reserved neighbours


@dataclass(frozen=True, slots=True)
class FieldKind:
    """Valid range of a column and the smallest value that is a DCGM sentinel for it."""

    low: float
    high: float
    sentinel_floor: float  # every value >= this is a blank (for the fields of this kind)


PERCENT = FieldKind(0.0, 100.0, DCGM_INT32_BLANK)
RATIO = FieldKind(0.0, 1.0, DCGM_INT32_BLANK)
TEMPERATURE = FieldKind(-40.0, 150.0, DCGM_INT32_BLANK)
# Clocks, MiB, watts, XID codes: small quantities, so anything from the int32 blank up is one.
QUANTITY = FieldKind(0.0, math.inf, DCGM_INT32_BLANK)
# 64-bit counters and byte rates legitimately pass 2**31 (and could pass 2**47).
LARGE = FieldKind(0.0, math.inf, _INT64_BLANK_FLOAT)

FIELDS: dict[str, tuple[str, FieldKind]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("gpu_util_percent", PERCENT),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("mem_copy_util_percent", PERCENT),
    "DCGM_FI_DEV_ENC_UTIL": ("enc_util_percent", PERCENT),
    "DCGM_FI_DEV_DEC_UTIL": ("dec_util_percent", PERCENT),
    "DCGM_FI_DEV_FB_USED": ("fb_used_mib", QUANTITY),
    "DCGM_FI_DEV_FB_FREE": ("fb_free_mib", QUANTITY),
    "DCGM_FI_DEV_POWER_USAGE": ("power_watts", QUANTITY),
    "DCGM_FI_DEV_GPU_TEMP": ("gpu_temp_c", TEMPERATURE),
    "DCGM_FI_DEV_MEMORY_TEMP": ("memory_temp_c", TEMPERATURE),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_clock_mhz", QUANTITY),
    "DCGM_FI_DEV_MEM_CLOCK": ("mem_clock_mhz", QUANTITY),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("energy_mj", LARGE),
    "DCGM_FI_DEV_XID_ERRORS": ("xid_last", QUANTITY),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": ("pcie_replay_total", LARGE),
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": ("nvlink_bandwidth_total", LARGE),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": ("prof_gr_engine_active", RATIO),
    "DCGM_FI_PROF_SM_ACTIVE": ("prof_sm_active", RATIO),
    "DCGM_FI_PROF_SM_OCCUPANCY": ("prof_sm_occupancy", RATIO),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": ("prof_tensor_active", RATIO),
    "DCGM_FI_PROF_DRAM_ACTIVE": ("prof_dram_active", RATIO),
    "DCGM_FI_PROF_PIPE_FP64_ACTIVE": ("prof_fp64_active", RATIO),
    "DCGM_FI_PROF_PIPE_FP32_ACTIVE": ("prof_fp32_active", RATIO),
    "DCGM_FI_PROF_PIPE_FP16_ACTIVE": ("prof_fp16_active", RATIO),
    "DCGM_FI_PROF_PCIE_TX_BYTES": ("prof_pcie_tx_bytes", LARGE),
    "DCGM_FI_PROF_PCIE_RX_BYTES": ("prof_pcie_rx_bytes", LARGE),
    "DCGM_FI_PROF_NVLINK_TX_BYTES": ("prof_nvlink_tx_bytes", LARGE),
    "DCGM_FI_PROF_NVLINK_RX_BYTES": ("prof_nvlink_rx_bytes", LARGE),
}


def is_dcgm_sentinel(metric: str, value: float) -> bool:
    """True when ``value`` is a DCGM blank for field ``metric``.

    Known fields use their kind's floor. For other fields the type is unknown, so only the exact
    blank windows of each type count (a 64-bit counter may legitimately pass 2**31).
    """
    known = FIELDS.get(metric)
    if known is not None:
        return value >= known[1].sentinel_floor
    if value >= _INT64_BLANK_FLOAT:
        return True
    if DCGM_INT32_BLANK <= value < DCGM_INT32_BLANK + _BLANK_WINDOW:
        return value == int(value)
    return DCGM_FP64_BLANK <= value < DCGM_FP64_BLANK + _BLANK_WINDOW


@dataclass(slots=True)
class DcgmResult:
    gpus: list[GpuSample]
    rest: list[int]  # indices into parsed.series not mapped to GPU columns
    sentinels: int = 0
    out_of_range: int = 0


_Identity = tuple[str, int, str, str, str, str, str, str, str, str, str]


def _host_of(target: str) -> str:
    """``target_host`` memoized, returning the same str object for the same target."""
    host = _HOSTS.get(target)
    if host is None:
        if len(_HOSTS) > _IDENTITIES_MAX:
            _HOSTS.clear()
        host = _HOSTS[target] = target_host(target)
    return host


def target_host(target: str) -> str:
    """Host part of a target id such as ``acct/dcgm/http://10.0.0.5:9400/metrics``."""
    scheme_at = target.find("://")
    if scheme_at < 0:
        return target
    start = target.rfind("/", 0, scheme_at) + 1
    try:
        host = urlsplit(target[start:]).hostname
    except ValueError:
        host = None
    return host or target


def _identity(labels: tuple[tuple[str, str], ...], default_host: str) -> _Identity | None:
    """GPU identity from a series' labels; ``None`` when the series is not about one GPU."""
    get = dict(labels).get
    gpu = get("gpu", "")
    uuid = get("UUID", "")
    if not gpu and not uuid:
        return None
    try:
        index = int(gpu) if gpu else -1
    except ValueError:
        index = -1
    return (
        get("Hostname") or default_host,
        index,
        uuid,
        get("modelName", ""),
        get("GPU_I_ID", ""),
        get("GPU_I_PROFILE", ""),
        get("DCGM_FI_DRIVER_VERSION", ""),
        get("pci_bus_id", ""),
        get("namespace", ""),
        get("pod", ""),
        get("container", ""),
    )


def dcgm_rows(parsed: ParsedExposition, ctx: TargetContext, ts_ms: int) -> DcgmResult:
    """Group mapped DCGM series into GPU rows; everything else is returned in ``rest``.

    Sentinels and out-of-range values (percent outside [0, 100], ratios outside [0, 1],
    temperatures outside [-40, 150], negative quantities, NaN/Inf) are dropped from the row and
    counted. The first series of a GPU/column wins. Never raises on odd input.
    """
    result = DcgmResult(gpus=[], rest=[])
    default_host = _host_of(ctx.target)
    rows: dict[int, tuple[_Identity, dict[str, float]]] = {}
    identities = _IDENTITIES
    if len(identities) > _IDENTITIES_MAX:
        identities.clear()
        _INTERNED.clear()
    values = parsed.values
    for index, s in enumerate(parsed.series):
        mapped = FIELDS.get(s.metric)
        if mapped is None or index >= len(values):
            result.rest.append(index)
            continue
        cached = identities.get(id(s))
        if cached is not None and cached[0] is s and cached[1] is default_host:
            identity = cached[2]
        else:
            identity = _identity(s.labels, default_host)
            if identity is not None:  # one object per GPU, so rows can be keyed by id()
                identity = _INTERNED.setdefault(identity, identity)
            identities[id(s)] = (s, default_host, identity)
        if identity is None:
            result.rest.append(index)
            continue
        row = rows.get(id(identity))
        if row is None:
            row = rows[id(identity)] = (identity, {})
        metrics = row[1]
        column, kind = mapped
        value = values[index]
        if not isinstance(value, _NUMBER) or not math.isfinite(value):
            result.out_of_range += 1
        elif value >= kind.sentinel_floor:
            result.sentinels += 1
        elif not kind.low <= value <= kind.high:
            result.out_of_range += 1
        elif column not in metrics:
            metrics[column] = float(value)
    for identity, metrics in rows.values():
        result.gpus.append(
            GpuSample(
                ts_ms=ts_ms,
                customer=ctx.customer,
                provider=ctx.provider,
                account=ctx.account,
                target=ctx.target,
                host=identity[0],
                gpu_index=identity[1],
                gpu_uuid=identity[2],
                gpu_model=identity[3],
                mig_instance=identity[4],
                mig_profile=identity[5],
                driver_version=identity[6],
                pci_bus_id=identity[7],
                namespace=identity[8],
                pod=identity[9],
                container=identity[10],
                metrics=metrics,
            )
        )
    return result


# id(Series) -> (that Series, default host, GPU identity). SeriesCache hands out the same Series
# object every scrape, so this skips rebuilding identities from labels, which otherwise dominates
# the cost. The entry holds the Series itself, so an id cannot be reused while cached, and the
# `is` checks make a stale entry a miss. The cap keeps churn from growing it without bound.
_IDENTITIES: dict[int, tuple[Series, str, _Identity | None]] = {}
_INTERNED: dict[_Identity, _Identity] = {}
_HOSTS: dict[str, str] = {}
_IDENTITIES_MAX = 200_000
_NUMBER = (float, int)
