"""Exposition payloads of a simulated host at time ``t``: dcgm-exporter and node_exporter.

Pure functions of (host, t): the same host and instant always give the same text, which is what
lets tests assert values and lets the fleet cache one rendering per host and second. Field names,
HELP texts, label names and label order follow a real dcgm-exporter 3.x on an H100 node
(``DCGM_FI_DRIVER_VERSION`` as a label, DCP ``DCGM_FI_PROF_*`` fields on profiling hosts, and
``GPU_I_PROFILE``/``GPU_I_ID`` on MIG instances, where the whole-GPU utilisation fields are absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from multicloud_collector.demo.hosts import MigInstance, SimGpu, SimHost
from multicloud_collector.demo.node_payload import node_families
from multicloud_collector.demo.textfmt import FMT_F6, FMT_INT, Family, Labels, render_families
from multicloud_collector.demo.workload import noise

# (name, HELP, TYPE, format, scope): scope "dev" = one series per physical GPU, "inst" = one per
# MIG instance on MIG GPUs (else per GPU), "nonmig" = only on GPUs without MIG.
_DCGM_FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", "gauge", FMT_INT, "dev"),
    ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", "gauge", FMT_INT, "dev"),
    ("DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C).", "gauge", FMT_INT, "dev"),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "gauge", FMT_INT, "dev"),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "gauge", FMT_F6, "dev"),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "Total energy consumption since boot (in mJ).",
        "counter",
        FMT_INT,
        "dev",
    ),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", "counter", FMT_INT, "dev"),
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "gauge", FMT_INT, "nonmig"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", "gauge", FMT_INT, "nonmig"),
    ("DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %).", "gauge", FMT_INT, "nonmig"),
    ("DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %).", "gauge", FMT_INT, "nonmig"),
    ("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", "gauge", FMT_INT, "dev"),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", "gauge", FMT_INT, "inst"),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "gauge", FMT_INT, "inst"),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "Total number of NVLink bandwidth counters for all lanes.",
        "counter",
        FMT_INT,
        "dev",
    ),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "vGPU License status", "gauge", FMT_INT, "dev"),
)
_PROF_FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "Ratio of time the graphics engine is active.",
        "gauge",
        FMT_F6,
        "inst",
    ),
    (
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        "gauge",
        FMT_F6,
        "inst",
    ),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        "gauge",
        FMT_F6,
        "inst",
    ),
    (
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "The rate of data transmitted over the PCIe bus - including both protocol headers and data "
        "payloads - in bytes per second.",
        "gauge",
        FMT_INT,
        "dev",
    ),
    (
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "The rate of data received over the PCIe bus - including both protocol headers and data "
        "payloads - in bytes per second.",
        "gauge",
        FMT_INT,
        "dev",
    ),
)
XID_CODE = 13  # "Graphics Engine Exception", the most common XID in the field
RESERVED_FB_MIB = 502


@dataclass(frozen=True, slots=True)
class _GpuLabels:
    gpu: SimGpu
    labels: Labels
    instances: tuple[tuple[MigInstance, Labels], ...]


@lru_cache(maxsize=1024)
def _label_sets(host: SimHost) -> tuple[_GpuLabels, ...]:
    out = []
    for g in host.devices:
        head = (
            ("gpu", str(g.index)),
            ("UUID", g.uuid),
            ("pci_bus_id", g.pci_bus_id),
            ("device", f"nvidia{g.index}"),
            ("modelName", host.gpu_model),
        )
        tail = (("Hostname", host.name), ("DCGM_FI_DRIVER_VERSION", host.driver_version))
        inst = tuple(
            (m, (*head, ("GPU_I_PROFILE", m.profile), ("GPU_I_ID", str(m.instance_id)), *tail)) for m in g.mig
        )
        out.append(_GpuLabels(g, head + tail, inst))
    return tuple(out)


def gpu_values(host: SimHost, gpu: SimGpu, t: float) -> dict[str, float]:
    """Whole-GPU field values at ``t`` (keys are DCGM field names)."""
    spec = host.spec
    dt = host.uptime(t)
    step = int(t)
    load = min(1.0, max(0.0, gpu.wave.load(dt)))
    jitter = noise(gpu.key, step)
    span = spec.max_power_w - spec.idle_power_w
    power = max(1.0, spec.idle_power_w + span * load + 1.5 * jitter)
    energy_mj = 1000.0 * (spec.idle_power_w * dt + span * gpu.wave.integral(dt))
    util = min(100, max(0, round(100.0 * load + 2.0 * jitter)))
    temp = 28 + gpu.key % 5 + round(42.0 * load + 0.8 * jitter)
    fb_used = round(spec.memory_mib * (0.01 + 0.84 * load))
    xid = XID_CODE if gpu.xid_prone and (step // 600) % 3 == 0 else 0
    values = {
        "DCGM_FI_DEV_SM_CLOCK": float(spec.max_sm_clock_mhz if load >= 0.1 else 345),
        "DCGM_FI_DEV_MEM_CLOCK": float(spec.mem_clock_mhz),
        "DCGM_FI_DEV_MEMORY_TEMP": float(temp - 4 - gpu.key % 3),
        "DCGM_FI_DEV_GPU_TEMP": float(temp),
        "DCGM_FI_DEV_POWER_USAGE": power,
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": float(int(energy_mj)),
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": float(int(dt // 86400) if gpu.xid_prone else 0),
        "DCGM_FI_DEV_GPU_UTIL": float(util),
        "DCGM_FI_DEV_MEM_COPY_UTIL": float(round(util * 0.45)),
        "DCGM_FI_DEV_ENC_UTIL": 0.0,
        "DCGM_FI_DEV_DEC_UTIL": 0.0,
        "DCGM_FI_DEV_XID_ERRORS": float(xid),
        "DCGM_FI_DEV_FB_FREE": float(spec.memory_mib - RESERVED_FB_MIB - fb_used),
        "DCGM_FI_DEV_FB_USED": float(fb_used),
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": float(int(2.5e5 * gpu.wave.integral(dt))),
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS": 0.0,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": _ratio(0.95 * load + 0.01 * jitter),
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": _ratio(0.68 * load + 0.01 * jitter),
        "DCGM_FI_PROF_DRAM_ACTIVE": _ratio(0.82 * load + 0.01 * jitter),
        "DCGM_FI_PROF_PCIE_TX_BYTES": float(int(2e6 + 1.8e9 * load)),
        "DCGM_FI_PROF_PCIE_RX_BYTES": float(int(3e6 + 1.1e10 * load)),
    }
    return values


def _ratio(x: float) -> float:
    return min(1.0, max(0.0, x))


def _instance_values(gpu_vals: dict[str, float], inst: MigInstance, key: int, step: int) -> dict[str, float]:
    """A MIG instance carries its share of the GPU's work and its own slice of memory."""
    load = gpu_vals["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] / 0.95
    jitter = noise(key + inst.instance_id, step)
    used = min(inst.memory_mib, max(0, round(inst.memory_mib * (0.02 + 0.8 * load) + 150.0 * jitter)))
    return {
        "DCGM_FI_DEV_FB_USED": float(used),
        "DCGM_FI_DEV_FB_FREE": float(inst.memory_mib - used),
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": _ratio(0.95 * load + 0.02 * jitter),
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": _ratio(0.68 * load + 0.02 * jitter),
        "DCGM_FI_PROF_DRAM_ACTIVE": _ratio(0.82 * load + 0.02 * jitter),
    }


def dcgm_families(host: SimHost, t: float) -> list[Family]:
    """The dcgm-exporter metric families of ``host`` at unix time ``t``."""
    step = int(t)
    sets = _label_sets(host)
    dev = [gpu_values(host, s.gpu, t) for s in sets]
    inst = [
        [_instance_values(dev[i], m, s.gpu.key, step) for m, _ in s.instances] for i, s in enumerate(sets)
    ]
    fields = _DCGM_FIELDS + _PROF_FIELDS if host.profiling else _DCGM_FIELDS
    families: list[Family] = []
    for name, help_text, mtype, fmt, scope in fields:
        if name == "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL" and not host.spec.nvlink:
            continue
        samples: list[tuple[Labels, float]] = []
        for i, s in enumerate(sets):
            if s.instances and scope == "nonmig":
                continue
            if s.instances and scope == "inst":
                samples.extend((labels, inst[i][j][name]) for j, (_, labels) in enumerate(s.instances))
            else:
                samples.append((s.labels, dev[i][name]))
        if samples:
            families.append(Family(name, help_text, mtype, fmt, tuple(samples)))
    return families


def render_dcgm(host: SimHost, t: float) -> str:
    """dcgm-exporter ``/metrics`` text of ``host`` at ``t``."""
    return render_families(dcgm_families(host, t))


def render_node(host: SimHost, t: float) -> str:
    """node_exporter ``/metrics`` text of ``host`` at ``t``."""
    return render_families(node_families(host, t))


def host_families(host: SimHost, t: float) -> list[Family]:
    """Everything both exporters of ``host`` expose at ``t`` (what a Prometheus would hold)."""
    return dcgm_families(host, t) + node_families(host, t)


__all__ = [
    "dcgm_families",
    "gpu_values",
    "host_families",
    "node_families",
    "render_dcgm",
    "render_node",
]
