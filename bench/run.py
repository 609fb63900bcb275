#!/usr/bin/env python3
"""End-to-end benchmark: the real collector (`mcc run`) against a local target farm.

For each target count N it starts ``bench/farm.py`` (N exporter endpoints serving the real
node_exporter and 8-GPU DCGM fixture payloads), runs ``mcc run`` against it with a 1 s interval into
the embedded store, and measures, over a steady-state window after a warm-up:

* offered vs achieved samples/s (keep-up ratio),
* collector CPU-seconds per 1M samples end to end (parse, normalize, encode, chDB insert: the
  whole process, chDB's own threads included),
* peak RSS (VmHWM), scrape duration p50/p99 (from ``scrape_log``), event-loop lag p99 and max.

Usage::

    python bench/run.py                       # N = 100, 500, 1000; 60 s each
    python bench/run.py --targets 100 --duration 20
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
FIXTURES = BENCH / "fixtures"
PROVIDERS = ("vultr", "runpod", "lambda", "coreweave", "onprem")
TARGETS_PER_ACCOUNT = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")


def fixture_samples(name: str) -> int:
    text = (FIXTURES / name).read_text()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def http_query(base: str, sql: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(f"{base}/api/v1/query?format=JSONEachRow", data=sql.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def metric_values(text: str) -> dict[str, float]:
    """Sum every series of each metric name (labels ignored) — enough for counters we read."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


def histogram_quantile(text: str, metric: str, q: float) -> float:
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(metric + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rpartition(" ")[2])
    if not buckets:
        return float("nan")
    items = sorted(buckets.items())
    total = items[-1][1]
    for bound, count in items:
        if count >= q * total:
            return bound
    return float("inf")


def write_config(tmp: Path, urls: list[str], port: int, interval: str, concurrency: int) -> Path:
    accounts = []
    for n, start in enumerate(range(0, len(urls), TARGETS_PER_ACCOUNT)):
        chunk = urls[start : start + TARGETS_PER_ACCOUNT]
        provider = PROVIDERS[n % len(PROVIDERS)]
        accounts.append(
            {
                "id": f"bench-{n}",
                "customer": f"cust-{n % 3}",
                "provider": provider,
                "exporters": [{"url": u, "kind": u.rsplit("/", 3)[1]} for u in chunk],
            }
        )
    cfg = {
        "collector": {
            "interval": interval,
            "scrape_timeout": "900ms",
            "max_concurrency": concurrency,
            "listen": f"127.0.0.1:{port}",
            "state_dir": str(tmp / "state"),
            "retries": {"max_tries": 1},
            "log": {"level": "warning"},
        },
        "sink": {
            "kind": "embedded",
            "batch": {"max_rows": 100_000, "max_age": "2s"},
            "embedded": {"path": str(tmp / "chdb")},
        },
        "providers": {p: {"category": "on-prem" if p == "onprem" else "gpu-cloud"} for p in PROVIDERS},
        "accounts": accounts,
    }
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_one(
    n: int, *, duration: float, warmup: float, interval: str, kind: str, concurrency: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"mcc-bench-{n}-") as d:
        tmp = Path(d)
        urls_file = tmp / "urls.txt"
        farm = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "farm.py"),
                "--targets",
                str(n),
                "--kind",
                kind,
                "--urls-file",
                str(urls_file),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert farm.stdout is not None
        line = farm.stdout.readline()
        if not line.startswith("FARM READY"):
            farm.kill()
            raise RuntimeError(f"farm did not start: {line!r}")
        urls = urls_file.read_text().split()
        n_node = sum(1 for u in urls if "/node/" in u)
        n_dcgm = len(urls) - n_node
        per_s = 1.0 / _seconds(interval)
        offered = (
            n_node * fixture_samples("node_exporter_1.5.prom")
            + n_dcgm * fixture_samples("dcgm_h100_8gpu.prom")
        ) * per_s
        port = free_port()
        cfg = write_config(tmp, urls, port, interval, concurrency)
        base = f"http://127.0.0.1:{port}"
        log_path = tmp / "collector.log"
        with log_path.open("w") as log:
            coll = subprocess.Popen(
                [sys.executable, "-m", "multicloud_collector", "run", "-c", str(cfg)], stdout=log, stderr=log
            )
            try:
                deadline = time.monotonic() + 60
                while http_get(f"{base}/readyz")[0] != 200:
                    if time.monotonic() > deadline or coll.poll() is not None:
                        raise RuntimeError("collector did not become ready:\n" + log_path.read_text()[-2000:])
                    time.sleep(0.2)
                time.sleep(warmup)
                m0 = metric_values(http_get(f"{base}/metrics")[1].decode())
                c0, t0 = cpu_seconds(coll.pid), time.monotonic()
                farm_c0 = cpu_seconds(farm.pid)
                ts0 = time.time()
                time.sleep(duration)
                text1 = http_get(f"{base}/metrics")[1].decode()
                m1 = metric_values(text1)
                c1, t1 = cpu_seconds(coll.pid), time.monotonic()
                farm_c1 = cpu_seconds(farm.pid)
                rss = peak_rss_mib(coll.pid)
                q = http_query(
                    base,
                    "SELECT quantile(0.5)(duration_ms) AS p50, quantile(0.99)(duration_ms) AS p99, "
                    "countIf(status != 'ok') AS failed, count() AS scrapes FROM mcc.scrape_log "
                    f"WHERE ts >= fromUnixTimestamp64Milli({int(ts0 * 1000)})",
                )[0]
            finally:
                coll.send_signal(signal.SIGTERM)
                try:
                    coll.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    coll.kill()
                farm.send_signal(signal.SIGTERM)
                farm.wait(timeout=30)
        elapsed = t1 - t0
        samples = m1.get("mcc_scrape_samples_total", 0) - m0.get("mcc_scrape_samples_total", 0)
        rows = m1.get("mcc_sink_rows_total", 0) - m0.get("mcc_sink_rows_total", 0)
        achieved = samples / elapsed
        cpu = c1 - c0
        return {
            "targets": n,
            "node_targets": n_node,
            "dcgm_targets": n_dcgm,
            "interval_s": _seconds(interval),
            "window_s": round(elapsed, 1),
            "offered_samples_per_s": round(offered),
            "achieved_samples_per_s": round(achieved),
            "keep_up": round(achieved / offered, 3) if offered else None,
            "rows_written_per_s": round(rows / elapsed),
            "collector_cpu_s_per_1m_samples": round(cpu / samples * 1e6, 2) if samples else None,
            "collector_cpu_cores": round(cpu / elapsed, 2),
            "farm_cpu_cores": round((farm_c1 - farm_c0) / elapsed, 2),
            "peak_rss_mib": round(rss, 1),
            "scrape_p50_ms": round(float(q["p50"]), 1),
            "scrape_p99_ms": round(float(q["p99"]), 1),
            "scrapes": int(q["scrapes"]),
            "failed_scrapes": int(q["failed"]),
            "loop_lag_p99_s": histogram_quantile(text1, "mcc_event_loop_lag_seconds", 0.99),
            "loop_lag_max_s": round(m1.get("mcc_event_loop_lag_max_seconds", float("nan")), 3),
        }


def _seconds(interval: str) -> float:
    from multicloud_collector.config.units import parse_duration

    return parse_duration(interval)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="100,500,1000", help="comma-separated target counts")
    ap.add_argument("--duration", type=float, default=60.0, help="measured window per run (s)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--kind", default="mixed", choices=["node", "dcgm", "mixed"])
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    results = []
    for n in (int(x) for x in args.targets.split(",")):
        print(
            f"== {n} targets, {args.kind}, interval {args.interval}, {args.duration:.0f}s window ...",
            flush=True,
        )
        r = run_one(
            n,
            duration=args.duration,
            warmup=args.warmup,
            interval=args.interval,
            kind=args.kind,
            concurrency=args.concurrency,
        )
        results.append(r)
        for k, v in r.items():
            print(f"   {k:<32} {v}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    cols = (
        "targets",
        "offered_samples_per_s",
        "achieved_samples_per_s",
        "keep_up",
        "collector_cpu_s_per_1m_samples",
        "peak_rss_mib",
        "scrape_p50_ms",
        "scrape_p99_ms",
        "loop_lag_p99_s",
    )
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
