#!/usr/bin/env python3
"""Sink benchmark: rows/s and client CPU-seconds per 1M rows, and the replay rate of a full spool.

* ``http``: ``ClickHouseSink.insert`` (orjson JSONEachRow over aiohttp, dedup token per batch)
  into the chDB-backed ClickHouse HTTP test server running in its own process, so client CPU
  (``process_time`` of this process) excludes the server.
* ``embedded``: ``EmbeddedSink.insert`` (chDB in this process: CPU includes the engine).
* ``replay``: a spool filled with the same batches is drained by the sink's replayer, unpaced.

Rows are ``samples`` rows as the collector writes them (``tests/test_sink_clickhouse.sample_rows``).

Usage::

    python bench/sink_bench.py [--rows 1000000] [--batch 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.ch_http_server import ChServer  # noqa: E402
from test_sink_clickhouse import build_sink, new_db, sample_batch, wait_for  # noqa: E402

from multicloud_collector.sink.base import EncodedBatch  # noqa: E402
from multicloud_collector.sink.embedded import EmbeddedSink  # noqa: E402


def batches(rows: int, size: int) -> list[EncodedBatch]:
    return [sample_batch(range(i, min(i + size, rows))) for i in range(0, rows, size)]


def figures(name: str, rows: int, wall: float, cpu: float) -> dict[str, object]:
    return {
        "sink": name,
        "rows": rows,
        "rows_per_s": round(rows / wall),
        "client_cpu_s_per_1M_rows": round(cpu / rows * 1e6, 2),
        "wall_s": round(wall, 2),
    }


async def bench_http(server: ChServer, tmp: Path, todo: list[EncodedBatch]) -> dict[str, object]:
    sink = build_sink(server, tmp, new_db(), timeout=60)
    await sink.start()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        for b in todo:
            await sink.insert(b)
        return figures(
            "http (ClickHouseSink)",
            sum(b.rows for b in todo),
            time.perf_counter() - w0,
            time.process_time() - c0,
        )
    finally:
        await sink.close()


async def bench_replay(server: ChServer, tmp: Path, todo: list[EncodedBatch]) -> dict[str, object]:
    sink = build_sink(server, tmp, new_db(), timeout=60, spool_bytes=4 << 30, segment_bytes=256 << 20)
    await sink.spool.open()
    for b in todo:
        await sink.spool.put(b)
    await sink.spool.close()
    w0, c0 = time.perf_counter(), time.process_time()
    await sink.start()  # the replayer starts draining at once
    try:
        await wait_for(lambda: not sink.spool.backlog, 600, "the spool to drain")
        return figures(
            "replay of a full spool",
            sum(b.rows for b in todo),
            time.perf_counter() - w0,
            time.process_time() - c0,
        )
    finally:
        await sink.close()


async def bench_embedded(tmp: Path, todo: list[EncodedBatch]) -> dict[str, object]:
    sink = EmbeddedSink(tmp / "chdb", "bench")
    await sink.start()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        for b in todo:
            await sink.insert(b)
        return figures(
            "embedded (chDB in process)",
            sum(b.rows for b in todo),
            time.perf_counter() - w0,
            time.process_time() - c0,
        )
    finally:
        await sink.close()


async def main(args: argparse.Namespace) -> None:
    todo = batches(args.rows, args.batch)
    with tempfile.TemporaryDirectory(prefix="mcc-sink-bench-") as d:
        tmp = Path(d)
        server = ChServer(tmp / "server")
        server.start()
        try:
            results = [await bench_http(server, tmp / "h", todo), await bench_replay(server, tmp / "r", todo)]
        finally:
            server.stop()
        results.append(await bench_embedded(tmp, todo))
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=50_000)
    asyncio.run(main(ap.parse_args()))
