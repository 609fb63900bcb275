"""The layout of the simulated fleet: which provider and customer owns which host and GPUs.

The layout is drawn from a seeded ``random.Random`` so that a given seed always yields the same
hosts, UUIDs and workloads (tests and screenshots stay stable), while every host kind the demo is
meant to show (busy, idle, alternating, mixed, MIG, profiling fields) is guaranteed to appear.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from multicloud_collector.demo.workload import TAU, Pattern, Wave, make_wave


@dataclass(frozen=True, slots=True)
class GpuModel:
    """Static properties of one GPU model as dcgm-exporter reports them."""

    model_name: str
    memory_mib: int
    idle_power_w: float
    max_power_w: float
    max_sm_clock_mhz: int
    mem_clock_mhz: int
    nvlink: bool
    hourly_usd: float


H100 = GpuModel("NVIDIA H100 80GB HBM3", 81559, 70.0, 700.0, 1980, 2619, True, 2.49)
A100 = GpuModel("NVIDIA A100-SXM4-80GB", 81920, 55.0, 400.0, 1410, 1593, True, 1.29)
L40S = GpuModel("NVIDIA L40S", 46068, 35.0, 350.0, 2520, 9001, False, 0.99)
RTX_A6000 = GpuModel("NVIDIA RTX A6000", 49140, 22.0, 300.0, 2100, 8001, False, 0.49)
GPU_MODELS: tuple[GpuModel, ...] = (H100, A100, L40S, RTX_A6000)


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """A provider as the demo simulates it: its catalog category and the host shapes it rents."""

    name: str
    display_name: str
    category: str
    driver_version: str
    shapes: tuple[tuple[GpuModel, int], ...]  # (model, GPUs per host), cycled over the hosts
    profiling: bool  # whether its dcgm-exporter runs the DCP (DCGM_FI_PROF_*) field set


PROVIDERS: tuple[ProviderProfile, ...] = (
    ProviderProfile("vultr", "Vultr", "gpu-cloud", "535.183.01", ((H100, 8), (A100, 4), (L40S, 2)), False),
    ProviderProfile(
        "runpod", "RunPod", "gpu-cloud", "550.54.15", ((RTX_A6000, 2), (H100, 1), (L40S, 4)), False
    ),
    ProviderProfile("lambda", "Lambda", "gpu-cloud", "535.183.01", ((H100, 8), (A100, 8), (H100, 1)), True),
    ProviderProfile(
        "coreweave", "CoreWeave", "gpu-cloud", "550.90.07", ((H100, 8), (A100, 8), (L40S, 8)), True
    ),
    ProviderProfile("onprem", "On-prem cluster", "on-prem", "535.183.01", ((A100, 4), (RTX_A6000, 4)), False),
)
PROVIDERS_BY_NAME: dict[str, ProviderProfile] = {p.name: p for p in PROVIDERS}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROVIDERS_BY_NAME)

PCI_BUS_IDS: tuple[str, ...] = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
CPUS_PER_GPU_COUNT: dict[int, int] = {1: 8, 2: 16, 4: 24, 8: 32}
GiB = 1024**3


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One MIG GPU instance, labelled ``GPU_I_PROFILE`` / ``GPU_I_ID`` by dcgm-exporter."""

    profile: str
    instance_id: int
    memory_mib: int
    share: float  # fraction of the parent GPU's work running on this instance


@dataclass(frozen=True, slots=True)
class SimGpu:
    index: int
    uuid: str
    pci_bus_id: str
    pattern: Pattern
    wave: Wave
    key: int  # seeds the per-series jitter
    mig: tuple[MigInstance, ...] = ()
    xid_prone: bool = False


@dataclass(frozen=True, slots=True)
class SimHost:
    """One simulated machine with a dcgm-exporter and a node_exporter."""

    name: str
    provider: str
    customer: str
    gpus: int
    gpu_model: str
    spec: GpuModel
    devices: tuple[SimGpu, ...]
    kind: str  # training | idle | batch | mixed
    cpus: int
    memory_bytes: int
    boot_time: float
    driver_version: str
    profiling: bool
    mig: bool
    hourly_usd: float
    key: int

    def uptime(self, t: float) -> float:
        return max(0.0, t - self.boot_time)


HOST_KINDS: tuple[str, ...] = ("training", "idle", "batch", "mixed")
_MIG_LAYOUTS: tuple[tuple[MigInstance, ...], ...] = (
    (MigInstance("3g.40gb", 1, 40192, 0.5), MigInstance("3g.40gb", 2, 40192, 0.5)),
    (
        MigInstance("2g.20gb", 3, 19968, 0.35),
        MigInstance("2g.20gb", 5, 19968, 0.35),
        MigInstance("1g.10gb", 13, 9856, 0.3),
    ),
)


def _gpu_patterns(kind: str, count: int) -> list[Pattern]:
    if kind == "training":
        return [Pattern.BUSY] * count
    if kind == "idle":
        return [Pattern.IDLE] * count
    if kind == "batch":
        return [Pattern.ALTERNATING] * count
    busy = max(1, (count * 3) // 4) if count > 1 else 1
    return [Pattern.BUSY] * busy + [Pattern.IDLE] * (count - busy)


def build_fleet(
    *,
    seed: int = 0,
    epoch: float,
    hosts_per_provider: int = 5,
    providers: Sequence[str] = PROVIDER_NAMES,
    customers: Sequence[str] = ("acme", "globex"),
) -> list[SimHost]:
    """Hosts for every (provider, i); customers alternate so each gets hosts on each provider.

    ``epoch`` anchors boot times (hosts booted 3-40 days before it), so counters have realistic
    magnitudes. The first A100 host becomes the MIG host and one GPU of the fleet is XID-prone.
    """
    if hosts_per_provider < 1:
        raise ValueError(f"hosts_per_provider: must be >= 1, got {hosts_per_provider}")
    if not customers:
        raise ValueError("customers: at least one customer is required")
    unknown = [p for p in providers if p not in PROVIDERS_BY_NAME]
    if unknown:
        raise ValueError(f"providers: unknown {unknown}; known: {sorted(PROVIDERS_BY_NAME)}")
    rng = random.Random(seed)
    total = hosts_per_provider * len(providers)
    kinds = [HOST_KINDS[i % len(HOST_KINDS)] for i in range(total)]
    rng.shuffle(kinds)
    hosts: list[SimHost] = []
    mig_done = False
    xid_host = rng.randrange(total)
    for pi, pname in enumerate(providers):
        prof = PROVIDERS_BY_NAME[pname]
        for i in range(hosts_per_provider):
            n = pi * hosts_per_provider + i
            model, count = prof.shapes[i % len(prof.shapes)]
            customer = customers[i % len(customers)]
            mig = not mig_done and model is A100
            mig_done = mig_done or mig
            kind = kinds[n]
            host_phase = rng.uniform(0.0, TAU)
            devices = []
            for g, pattern in enumerate(_gpu_patterns(kind, count)):
                phase = host_phase if pattern is Pattern.ALTERNATING else host_phase + rng.uniform(0.0, 1.0)
                devices.append(
                    SimGpu(
                        index=g,
                        uuid="GPU-" + str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        pci_bus_id=f"00000000:{PCI_BUS_IDS[g % len(PCI_BUS_IDS)]}:00.0",
                        pattern=pattern,
                        wave=make_wave(pattern, phase),
                        key=rng.getrandbits(48),
                        mig=_MIG_LAYOUTS[g] if mig and g < len(_MIG_LAYOUTS) else (),
                        xid_prone=(n == xid_host and g == count - 1),
                    )
                )
            hosts.append(
                SimHost(
                    name=f"{pname}-{customer}-{i + 1:02d}",
                    provider=pname,
                    customer=customer,
                    gpus=count,
                    gpu_model=model.model_name,
                    spec=model,
                    devices=tuple(devices),
                    kind=kind,
                    cpus=CPUS_PER_GPU_COUNT.get(count, 16),
                    memory_bytes=max(64, 128 * count) * GiB,
                    boot_time=float(int(epoch - rng.uniform(3.0, 40.0) * 86400.0)),
                    driver_version=prof.driver_version,
                    profiling=prof.profiling or mig,
                    mig=mig,
                    hourly_usd=round(model.hourly_usd * count, 2),
                    key=rng.getrandbits(48),
                )
            )
    return hosts
