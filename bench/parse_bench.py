"""Micro-benchmark of the exposition parser: µs per sample, cold vs warm cache.

Run: ``python bench/parse_bench.py`` (from the repository root). Compares against
``prometheus_client.parser.text_string_to_metric_families`` as a reference point. Numbers depend
on the machine; they are printed, never asserted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from multicloud_collector.model import ScrapeLimits, TargetContext  # noqa: E402
from multicloud_collector.normalize.dcgm import dcgm_rows  # noqa: E402
from multicloud_collector.parse import SeriesCache, parse_exposition  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "exposition"
LIMITS = ScrapeLimits()
EXTRA = (("account", "acct-1"), ("customer", "c1"))


def _best_of(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Best mean seconds per call over ``repeat`` rounds of ``number`` calls (least noisy)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def bench_file(name: str, number: int) -> None:
    body = (FIXTURES / name).read_bytes()
    text = body.decode()
    warm_cache = SeriesCache("bench", EXTRA)
    samples = len(parse_exposition(body, content_type=None, limits=LIMITS, cache=warm_cache).values)

    def cold() -> object:
        return parse_exposition(body, content_type=None, limits=LIMITS, cache=SeriesCache("bench", EXTRA))

    def warm() -> object:
        return parse_exposition(body, content_type=None, limits=LIMITS, cache=warm_cache)

    def reference() -> object:
        return [s for fam in text_string_to_metric_families(text) for s in fam.samples]

    rows = [
        ("cold cache", _best_of(cold, 5, max(1, number // 10))),
        ("warm cache", _best_of(warm, 5, number)),
        ("prometheus_client parser", _best_of(reference, 5, max(1, number // 10))),
    ]
    if name.startswith("h100"):
        ctx = TargetContext("c1", "p", "a", "a/dcgm/http://10.0.0.5:9400/metrics", "dcgm", "dcgm")

        def warm_dcgm() -> object:
            parsed = parse_exposition(body, content_type=None, limits=LIMITS, cache=warm_cache)
            return dcgm_rows(parsed, ctx, 0)

        rows.append(("warm cache + dcgm_rows", _best_of(warm_dcgm, 5, number)))
    print(f"{name}: {samples} samples, {len(body)} bytes")
    for label, seconds in rows:
        print(f"  {label:<28} {seconds * 1e6 / samples:8.2f} µs/sample  {seconds * 1e3:8.3f} ms/scrape")


def main() -> None:
    number = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(f"python {sys.version.split()[0]}")
    bench_file("node_exporter_1.5.prom", number)
    bench_file("h100_8gpu.prom", number)


if __name__ == "__main__":
    main()
