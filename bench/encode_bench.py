"""Microbenchmark of the JSONEachRow encoders (µs per row).

Shape of the hot path: each target yields a block of ~500 samples per scrape whose series are
stable, so after the first scrape every row is a cached prefix + value + tail. Run:

    .venv/bin/python bench/encode_bench.py [--targets 50] [--series 500] [--scrapes 20]
"""

from __future__ import annotations

import argparse
import random
import time

from multicloud_collector.model import (
    GpuSample,
    SampleBlock,
    ScrapeReport,
    ScrapeStatus,
    Series,
    TargetContext,
)
from multicloud_collector.sink.encode import SampleEncoder, encode_gpus, encode_reports


def make_targets(n_targets: int, n_series: int) -> list[tuple[TargetContext, list[Series]]]:
    out = []
    for t in range(n_targets):
        ctx = TargetContext(
            "cust-1",
            "lambda",
            "acct-1",
            f"acct-1/node/http://10.0.{t // 250}.{t % 250}:9100",
            "node",
            "exposition",
        )
        series = [
            Series(
                f"node_metric_{i % 40}",
                (("cpu", str(i % 16)), ("mode", "idle"), ("device", f"d{i}")),
                random.getrandbits(64),
            )
            for i in range(n_series)
        ]
        out.append((ctx, series))
    return out


def bench_samples(
    targets: list[tuple[TargetContext, list[Series]]], scrapes: int
) -> tuple[float, float, int]:
    enc = SampleEncoder()
    ts = int(time.time() * 1000)
    blocks = [
        SampleBlock(ctx, ts, series, [random.random() * 1e6 for _ in series], [0] * len(series))
        for ctx, series in targets
    ]
    start = time.perf_counter()
    for b in blocks:  # first scrape fills the prefix cache
        enc.encode_block(b)
    cold = time.perf_counter() - start
    rows = 0
    nbytes = 0
    start = time.perf_counter()
    for s in range(1, scrapes + 1):
        for b in blocks:
            b.ts_ms = ts + s * 1000
            data = enc.encode_block(b)
            rows += len(b)
            nbytes += len(data)
    warm = time.perf_counter() - start
    first_rows = sum(len(b) for b in blocks)
    return cold / first_rows * 1e6, warm / rows * 1e6, nbytes // max(rows, 1)


def bench_gpus(n: int) -> float:
    ts = int(time.time() * 1000)
    rows = [
        GpuSample(
            ts,
            "c",
            "coreweave",
            "a",
            "t",
            f"node-{i // 8}",
            i % 8,
            f"GPU-{i}",
            "NVIDIA H100 80GB HBM3",
            metrics={
                "gpu_util_percent": 90.0,
                "power_watts": 400.5,
                "fb_used_mib": 40000.0,
                "gpu_temp_c": 60.0,
                "sm_clock_mhz": 1980.0,
                "prof_sm_active": 0.8,
            },
        )
        for i in range(n)
    ]
    start = time.perf_counter()
    encode_gpus(rows)
    return (time.perf_counter() - start) / n * 1e6


def bench_reports(n: int) -> float:
    ctx = TargetContext("c", "p", "a", "t", "node", "exposition")
    reports = [
        ScrapeReport(1_700_000_000_000 + i, ctx, "http://h:9100/metrics", ScrapeStatus.OK, 12.5, 500, 40000)
        for i in range(n)
    ]
    start = time.perf_counter()
    encode_reports(reports)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", type=int, default=50)
    p.add_argument("--series", type=int, default=500)
    p.add_argument("--scrapes", type=int, default=20)
    a = p.parse_args()
    random.seed(1)
    cold, warm, row_bytes = bench_samples(make_targets(a.targets, a.series), a.scrapes)
    print(f"samples  first scrape (cache fill): {cold:6.3f} µs/row")
    print(f"samples  steady state (cached):     {warm:6.3f} µs/row  ({row_bytes} B/row)")
    print(f"gpu_samples:                        {bench_gpus(10_000):6.3f} µs/row")
    print(f"scrape_log:                         {bench_reports(10_000):6.3f} µs/row")


if __name__ == "__main__":
    main()
