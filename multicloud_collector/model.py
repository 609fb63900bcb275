"""Core data types shared by every stage of the pipeline.

Everything here is plain, frozen and I/O-free so that parsers, normalizers, sinks and plugins can
agree on shapes without importing each other. Hot paths (a scrape of 500 samples every second on
1,000 targets) do not build one object per sample: a scrape yields a ``SampleBlock`` whose series
metadata is shared and cached per target, and only the values change between scrapes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


class TargetKind(enum.StrEnum):
    """What a target is scraped as. Plugins may register further kinds by name."""

    NODE = "node"
    DCGM = "dcgm"
    GENERIC = "generic"
    PROMQL = "promql"


class ScrapeStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class TargetContext:
    """Who a row belongs to: constant for every row of one target."""

    customer: str
    provider: str
    account: str
    target: str  # stable target id, e.g. "acct-1/dcgm/http://10.0.0.5:9400/metrics"
    kind: str  # a TargetKind value or a plugin's scrape kind name
    source: str  # "exposition", "promql", "dcgm", ...


@dataclass(frozen=True, slots=True)
class Series:
    """One time series as identified inside a target: metric name plus sorted labels.

    ``series_id`` is a stable 64-bit hash of (metric, labels) so that ClickHouse can sort and
    join on a number instead of a map.
    """

    metric: str
    labels: tuple[tuple[str, str], ...]
    series_id: int

    @property
    def labels_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class Sample:
    """One normalized row of the ``samples`` table (long format)."""

    ts_ms: int
    customer: str
    provider: str
    account: str
    target: str
    source: str
    metric: str
    labels: Mapping[str, str]
    value: float
    series_id: int
    flags: int = 0


@dataclass(slots=True)
class SampleBlock:
    """All samples of one scrape of one target, sharing one timestamp and context.

    ``series[i]`` pairs with ``values[i]``; ``flags[i]`` carries validation flags (see
    ``normalize.ValueFlag``). Sinks encode a block without materializing ``Sample`` objects.
    """

    ctx: TargetContext
    ts_ms: int
    series: list[Series] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def samples(self) -> Iterator[Sample]:
        """Materialize rows; for tests, plugins and small volumes."""
        c = self.ctx
        for s, v, f in zip(self.series, self.values, self.flags or [0] * len(self.values), strict=True):
            yield Sample(
                ts_ms=self.ts_ms,
                customer=c.customer,
                provider=c.provider,
                account=c.account,
                target=c.target,
                source=c.source,
                metric=s.metric,
                labels=s.labels_dict,
                value=v,
                series_id=s.series_id,
                flags=f,
            )


# Unified GPU columns, in table order; every value is optional because DCGM fields vary by
# GPU generation, exporter configuration and whether profiling is enabled.
GPU_METRIC_COLUMNS: tuple[str, ...] = (
    "gpu_util_percent",
    "mem_copy_util_percent",
    "enc_util_percent",
    "dec_util_percent",
    "fb_used_mib",
    "fb_free_mib",
    "power_watts",
    "gpu_temp_c",
    "memory_temp_c",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "energy_mj",
    "xid_last",
    "pcie_replay_total",
    "nvlink_bandwidth_total",
    "prof_gr_engine_active",
    "prof_sm_active",
    "prof_sm_occupancy",
    "prof_tensor_active",
    "prof_dram_active",
    "prof_fp64_active",
    "prof_fp32_active",
    "prof_fp16_active",
    "prof_pcie_tx_bytes",
    "prof_pcie_rx_bytes",
    "prof_nvlink_tx_bytes",
    "prof_nvlink_rx_bytes",
)


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One row of ``gpu_samples``: one GPU (or MIG instance) at one scrape."""

    ts_ms: int
    customer: str
    provider: str
    account: str
    target: str
    host: str
    gpu_index: int
    gpu_uuid: str
    gpu_model: str
    mig_instance: str = ""
    mig_profile: str = ""
    driver_version: str = ""
    pci_bus_id: str = ""
    # Kubernetes attribution when dcgm-exporter runs with pod labels.
    namespace: str = ""
    pod: str = ""
    container: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScrapeReport:
    """One row of ``scrape_log`` and the per-target line of ``mcc collect --once``."""

    ts_ms: int
    ctx: TargetContext
    url: str  # secrets stripped
    status: ScrapeStatus
    duration_ms: float
    samples: int = 0
    bytes: int = 0
    error: str = ""
    error_reason: str = ""  # short machine-readable reason: timeout, http_status, body_limit, parse, ...
    dropped: int = 0  # samples dropped by validation


@dataclass(slots=True)
class ScrapeOutput:
    """Everything one scrape of one target produced."""

    report: ScrapeReport
    blocks: list[SampleBlock] = field(default_factory=list)
    gpus: list[GpuSample] = field(default_factory=list)
    # Values dropped by validation, by reason (nan, inf, negative, sentinel, out_of_range, ...).
    invalid: dict[str, int] = field(default_factory=dict)

    def count_invalid(self, by_reason: Mapping[str, int]) -> None:
        for reason, n in by_reason.items():
            if n:
                self.invalid[reason] = self.invalid.get(reason, 0) + n


@dataclass(slots=True)
class AccountResult:
    """``collect_all`` of one account: every target's output, errors aggregated per target."""

    account: str
    provider: str
    outputs: list[ScrapeOutput] = field(default_factory=list)

    @property
    def reports(self) -> list[ScrapeReport]:
        return [o.report for o in self.outputs]

    @property
    def errors(self) -> dict[str, str]:
        return {r.ctx.target: r.error for r in self.reports if r.status is ScrapeStatus.ERROR}

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class ScrapeLimits:
    """Protection against hostile or broken targets; a violation fails that scrape only.

    Defaults are finite on purpose (Prometheus leaves them unlimited; vmagent caps bodies at
    16 MiB). ``0`` means unlimited for a field.
    """

    body_size_bytes: int = 16 * 1024 * 1024  # counted after decompression
    samples_per_scrape: int = 100_000
    labels_per_series: int = 64
    label_name_length: int = 256
    label_value_length: int = 4096
    line_length: int = 64 * 1024
