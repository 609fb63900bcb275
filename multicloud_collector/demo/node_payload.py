"""node_exporter metrics of a simulated host: a realistic subset (150-400 samples per host).

The host's CPU, memory, network and disk activity follow the mean load of its GPUs (data loaders
and all-reduce traffic), so busy and idle hosts differ on both exporters. Counters are closed-form
integrals of those loads (see ``workload.Wave``) and therefore only ever grow.
"""

from __future__ import annotations

import math

from multicloud_collector.demo.hosts import SimHost
from multicloud_collector.demo.textfmt import FMT_GO, Family, Labels
from multicloud_collector.demo.workload import noise

_CPU_MODE_SHARE: tuple[tuple[str, float], ...] = (
    ("iowait", 0.05),
    ("irq", 0.0),
    ("nice", 0.002),
    ("softirq", 0.03),
    ("steal", 0.01),
    ("system", 0.18),
    ("user", 0.728),
)
_COLLECTORS: tuple[str, ...] = (
    "cpu",
    "diskstats",
    "filesystem",
    "loadavg",
    "meminfo",
    "netdev",
    "os",
    "stat",
    "textfile",
    "time",
    "uname",
    "vmstat",
)
GiB = 1024**3


def _host_load(host: SimHost, dt: float) -> float:
    """CPU load of the host in [0.05, 0.65]: 5 % base plus the data pipeline feeding its GPUs."""
    mean = sum(min(1.0, max(0.0, g.wave.load(dt))) for g in host.devices) / len(host.devices)
    return 0.05 + 0.6 * mean


def _gpu_load_integral(host: SimHost, dt: float) -> float:
    return sum(g.wave.integral(dt) for g in host.devices) / len(host.devices)


def _page(x: float) -> float:
    return float(int(x) // 4096 * 4096)


def _centi(x: float) -> float:
    """Seconds as node_exporter reports /proc/stat ticks: hundredths, rounded down."""
    return math.floor(x * 100.0) / 100.0


class _Builder:
    def __init__(self) -> None:
        self.families: list[Family] = []

    def add(self, name: str, help_text: str, mtype: str, samples: list[tuple[Labels, float]]) -> None:
        self.families.append(Family(name, help_text, mtype, FMT_GO, tuple(samples)))

    def one(self, name: str, help_text: str, mtype: str, value: float) -> None:
        self.add(name, help_text, mtype, [((), value)])


def node_families(host: SimHost, t: float) -> list[Family]:
    """The node_exporter metric families of ``host`` at unix time ``t``, sorted by name like the real one."""
    dt = host.uptime(t)
    step = int(t)
    hl = _host_load(host, dt)
    gi = _gpu_load_integral(host, dt)
    hli = 0.05 * dt + 0.6 * gi  # integral of the host load: busy CPU-seconds per CPU
    b = _Builder()
    _cpu_and_load(b, host, dt, step, hl, hli)
    _memory(b, host, hl)
    _filesystems(b, host, dt)
    _network(b, host, dt, hli, gi)
    _disks(b, dt, hli)
    _system(b, host, t, dt, hl, hli)
    b.families.sort(key=lambda f: f.name)
    return b.families


def _cpu_and_load(b: _Builder, host: SimHost, dt: float, step: int, hl: float, hli: float) -> None:
    samples: list[tuple[Labels, float]] = []
    for c in range(host.cpus):
        busy = (1.0 + 0.3 * noise(host.key, c)) * hli
        cpu = str(c)
        samples.append(((("cpu", cpu), ("mode", "idle")), _centi(dt - busy)))
        samples.extend(
            ((("cpu", cpu), ("mode", mode)), _centi(busy * share)) for mode, share in _CPU_MODE_SHARE
        )
    b.add("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", "counter", samples)
    n = host.cpus
    b.one(
        "node_load1",
        "1m load average.",
        "gauge",
        round(max(0.0, n * hl * 0.9 + 0.2 * noise(host.key, step)), 2),
    )
    b.one("node_load5", "5m load average.", "gauge", round(n * _host_load(host, dt - 150.0) * 0.9, 2))
    b.one("node_load15", "15m load average.", "gauge", round(n * _host_load(host, dt - 450.0) * 0.9, 2))


def _memory(b: _Builder, host: SimHost, hl: float) -> None:
    total = float(host.memory_bytes)
    used = 0.06 + 0.45 * hl
    avail = total * (1.0 - used)
    fields = (
        ("Active", total * used * 0.7),
        ("Buffers", total * 0.003),
        ("Cached", avail * 0.4),
        ("Inactive", avail * 0.32),
        ("MemAvailable", avail),
        ("MemFree", avail * 0.55),
        ("MemTotal", total),
        ("Shmem", total * 0.002),
        ("SwapFree", 0.0),
        ("SwapTotal", 0.0),
    )
    for field, value in fields:
        b.one(f"node_memory_{field}_bytes", f"Memory information field {field}_bytes.", "gauge", _page(value))


def _filesystems(b: _Builder, host: SimHost, dt: float) -> None:
    mounts = (
        ("/dev/nvme0n1p1", "ext4", "/", 960 * GiB, 0.25),
        ("/dev/nvme0n1p15", "vfat", "/boot/efi", 105 * 1024 * 1024, 0.06),
        ("/dev/md0", "xfs", "/data", host.gpus * 1788 * GiB, 0.35),
    )
    growth = 0.2 * (1.0 - math.exp(-dt / 2.0e6))  # datasets and checkpoints accumulate
    size: list[tuple[Labels, float]] = []
    free: list[tuple[Labels, float]] = []
    avail: list[tuple[Labels, float]] = []
    files: list[tuple[Labels, float]] = []
    files_free: list[tuple[Labels, float]] = []
    zero: list[tuple[Labels, float]] = []
    for device, fstype, mountpoint, total, base in mounts:
        labels = (("device", device), ("fstype", fstype), ("mountpoint", mountpoint))
        f = _page(total * (1.0 - base - (growth if mountpoint != "/boot/efi" else 0.0)))
        size.append((labels, float(total)))
        free.append((labels, f))
        avail.append((labels, _page(f - total * 0.05) if fstype == "ext4" else f))
        inodes = float(total // 16384)
        files.append((labels, inodes))
        files_free.append((labels, float(int(inodes * (1.0 - base)))))
        zero.append((labels, 0.0))
    b.add(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
        "gauge",
        avail,
    )
    b.add(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
        "gauge",
        zero,
    )
    b.add("node_filesystem_files", "Filesystem total file nodes.", "gauge", files)
    b.add("node_filesystem_files_free", "Filesystem total free file nodes.", "gauge", files_free)
    b.add("node_filesystem_free_bytes", "Filesystem free space in bytes.", "gauge", free)
    b.add("node_filesystem_readonly", "Filesystem read-only status.", "gauge", zero)
    b.add("node_filesystem_size_bytes", "Filesystem size in bytes.", "gauge", size)


def _network(b: _Builder, host: SimHost, dt: float, hli: float, gi: float) -> None:
    # (device, mtu, up, rx bytes, tx bytes): constant rate plus load-proportional traffic
    devices = [
        ("eth0", 1500.0, 1.0, 1.5e6 * dt + 4.0e7 * hli, 4.0e5 * dt + 1.2e7 * hli),
        ("lo", 65536.0, 0.0, 2.0e4 * dt, 2.0e4 * dt),
    ]
    if host.gpus >= 8:
        devices.append(("ibp24s0", 4092.0, 1.0, 2.0e3 * dt + 2.0e9 * gi, 2.0e3 * dt + 2.0e9 * gi))
    devices.sort()
    stats: dict[str, list[tuple[Labels, float]]] = {}
    for device, _mtu, _up, rx, tx in devices:
        labels = (("device", device),)
        for name, value in (
            ("receive_bytes", rx),
            ("receive_drop", float(int(dt / 3600.0)) if device == "eth0" else 0.0),
            ("receive_errs", 0.0),
            ("receive_packets", rx / 1100.0),
            ("transmit_bytes", tx),
            ("transmit_drop", 0.0),
            ("transmit_errs", 0.0),
            ("transmit_packets", tx / 900.0),
        ):
            stats.setdefault(name, []).append((labels, float(int(value))))
    for name, samples in stats.items():
        b.add(f"node_network_{name}_total", f"Network device statistic {name}.", "counter", samples)
    b.add(
        "node_network_mtu_bytes",
        "Network device property: mtu_bytes",
        "gauge",
        [((("device", d),), mtu) for d, mtu, _, _, _ in devices],
    )
    b.add(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
        "gauge",
        [((("device", d),), up) for d, _, up, _, _ in devices],
    )


def _disks(b: _Builder, dt: float, hli: float) -> None:
    rows = (("nvme0n1", 2.0e5, 5.0e6), ("nvme1n1", 1.0e5, 2.5e8))  # (device, base B/s, B/s per load)
    read: list[tuple[Labels, float]] = []
    written: list[tuple[Labels, float]] = []
    reads: list[tuple[Labels, float]] = []
    writes: list[tuple[Labels, float]] = []
    io_time: list[tuple[Labels, float]] = []
    for device, base, per_load in rows:
        labels = (("device", device),)
        rb = float(int(base * dt + per_load * hli))
        wb = float(int(0.5 * base * dt + 0.2 * per_load * hli))
        read.append((labels, rb))
        written.append((labels, wb))
        reads.append((labels, float(int(rb / 65536.0))))
        writes.append((labels, float(int(wb / 131072.0))))
        io_time.append((labels, round(0.002 * dt + 0.05 * hli, 3)))
    b.add("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", "counter", io_time)
    b.add("node_disk_read_bytes_total", "The total number of bytes read successfully.", "counter", read)
    b.add(
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        "counter",
        reads,
    )
    b.add(
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        "counter",
        writes,
    )
    b.add(
        "node_disk_written_bytes_total", "The total number of bytes written successfully.", "counter", written
    )


def _system(b: _Builder, host: SimHost, t: float, dt: float, hl: float, hli: float) -> None:
    n = host.cpus
    b.one("node_boot_time_seconds", "Node boot time, in unixtime.", "gauge", host.boot_time)
    b.one(
        "node_context_switches_total",
        "Total number of context switches.",
        "counter",
        float(int(n * (800.0 * dt + 20000.0 * hli))),
    )
    b.one("node_entropy_available_bits", "Bits of available entropy.", "gauge", 256.0)
    b.one(
        "node_filefd_allocated",
        "File descriptor statistics: allocated.",
        "gauge",
        float(int(3000 + 9000 * hl)),
    )
    b.one("node_filefd_maximum", "File descriptor statistics: maximum.", "gauge", 9.223372036854776e18)
    b.one("node_forks_total", "Total number of forks.", "counter", float(int(2.0 * dt + 30.0 * hli)))
    b.one(
        "node_intr_total",
        "Total number of interrupts serviced.",
        "counter",
        float(int(n * (300.0 * dt + 9000.0 * hli))),
    )
    b.one("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", "gauge", 0.0)
    b.one("node_procs_running", "Number of processes in runnable state.", "gauge", float(1 + int(n * hl)))
    b.one("node_time_seconds", "System time in seconds since epoch (1970).", "gauge", round(t, 3))
    b.one(
        "node_timex_sync_status",
        "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
        "gauge",
        1.0,
    )
    b.add(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        "gauge",
        [
            (
                (
                    ("domainname", "(none)"),
                    ("machine", "x86_64"),
                    ("nodename", host.name),
                    ("release", "5.15.0-119-generic"),
                    ("sysname", "Linux"),
                    ("version", "#129-Ubuntu SMP Fri Aug 2 19:25:20 UTC 2024"),
                ),
                1.0,
            )
        ],
    )
    b.add(
        "node_os_info",
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, "
        "image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
        "gauge",
        [
            (
                (
                    ("build_id", ""),
                    ("id", "ubuntu"),
                    ("id_like", "debian"),
                    ("image_id", ""),
                    ("image_version", ""),
                    ("name", "Ubuntu"),
                    ("pretty_name", "Ubuntu 22.04.4 LTS"),
                    ("variant", ""),
                    ("variant_id", ""),
                    ("version", "22.04.4 LTS (Jammy Jellyfish)"),
                    ("version_codename", "jammy"),
                    ("version_id", "22.04"),
                ),
                1.0,
            )
        ],
    )
    b.add(
        "node_exporter_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, "
        "goversion from which node_exporter was built, and the goos and goarch for the build.",
        "gauge",
        [
            (
                (
                    ("branch", "HEAD"),
                    ("goarch", "amd64"),
                    ("goos", "linux"),
                    ("goversion", "go1.21.4"),
                    ("revision", "7333465abf9efba81876303bb57e6fadb946041b"),
                    ("version", "1.7.0"),
                ),
                1.0,
            )
        ],
    )
    b.add(
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
        "gauge",
        [((("collector", c),), 1.0) for c in _COLLECTORS],
    )
    b.add(
        "node_scrape_collector_duration_seconds",
        "node_exporter: Duration of a collector scrape.",
        "gauge",
        [
            ((("collector", c),), round(0.0004 + 0.0003 * (1.0 + noise(host.key + i, int(t))), 6))
            for i, c in enumerate(_COLLECTORS)
        ],
    )
    b.one(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
        round(0.0008 * dt, 2),
    )
    b.one("process_max_fds", "Maximum number of open file descriptors.", "gauge", 1048576.0)
    b.one("process_open_fds", "Number of open file descriptors.", "gauge", 9.0)
    b.one(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
        float(2.1e7 + 4096 * (int(t) % 64)),
    )
    b.one(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
        host.boot_time + 7.31,
    )
    b.one("go_goroutines", "Number of goroutines that currently exist.", "gauge", 8.0)
    b.one("go_threads", "Number of OS threads created.", "gauge", 7.0)
    b.add(
        "promhttp_metric_handler_requests_total",
        "Total number of scrapes by HTTP status code.",
        "counter",
        [((("code", "200"),), float(int(dt / 15.0))), ((("code", "500"),), 0.0), ((("code", "503"),), 0.0)],
    )
