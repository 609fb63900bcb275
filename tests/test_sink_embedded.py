"""EmbeddedSink against real chDB: round trips, restart, errors, the directory lock.

chDB allows one data directory per process, so this module uses one path and every test closes
its sink; the lock test runs the second opener in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from multicloud_collector.migrations import load_migrations
from multicloud_collector.model import (
    GPU_METRIC_COLUMNS,
    GpuSample,
    SampleBlock,
    ScrapeReport,
    ScrapeStatus,
    Series,
    TargetContext,
)
from multicloud_collector.observe import NullObserver
from multicloud_collector.sink.base import EncodedBatch, SinkError
from multicloud_collector.sink.batcher import Batcher
from multicloud_collector.sink.embedded import EmbeddedSink, EmbeddedUnavailableError
from multicloud_collector.sink.encode import encode_block, encode_gpus, encode_reports
from multicloud_collector.store_query import ensure_read_only

pytest.importorskip("chdb")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded") / "data"


@pytest.fixture
async def sink(store_path: Path) -> AsyncIterator[EmbeddedSink]:
    s = EmbeddedSink(store_path, "mcc")
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def ctx() -> TargetContext:
    return TargetContext("cust", "lambda", "acct", f"acct/node/{uuid.uuid4().hex}", "node", "exposition")


async def select(s: EmbeddedSink, sql: str) -> list[dict[str, object]]:
    data = await s.query(sql, "JSONEachRow")
    return [orjson.loads(line) for line in data.splitlines()]


async def test_start_applies_migrations_and_state_is_writing(sink: EmbeddedSink) -> None:
    assert sink.state() == "writing"
    assert sink.migration_report is not None
    tables = (
        await sink.execute("SELECT name FROM system.tables WHERE database = 'mcc' ORDER BY name")
    ).split()
    assert {"gpu_samples", "samples", "schema_migrations", "scrape_log"} <= set(tables)
    assert sink.migration_report.applied == [m.filename for m in load_migrations()]


async def test_samples_round_trip_exact_values_labels_and_ms(sink: EmbeddedSink) -> None:
    c = ctx()
    ts = now_ms() // 1000 * 1000 + 7  # a millisecond part that a rounded float would lose
    series = [
        Series("node_cpu_seconds_total", (("cpu", "0"), ("mode", "idle")), 2**63 + 11),
        Series("weird", (("k", 'quote" back\\ tab\t nl\n é'),), 3),
    ]
    block = SampleBlock(c, ts, series, [123456.789012345, -0.1], [0, 2])
    await sink.insert(EncodedBatch.build("samples", encode_block(block), 2))
    got = await select(
        sink,
        "SELECT metric, labels, value, series_id, flags, toUnixTimestamp64Milli(ts) AS ms, customer, source "
        f"FROM mcc.samples WHERE target = '{c.target}' ORDER BY metric",
    )
    assert got == [
        {
            "metric": "node_cpu_seconds_total",
            "labels": {"cpu": "0", "mode": "idle"},
            "value": 123456.789012345,
            "series_id": 2**63 + 11,
            "flags": 0,
            "ms": ts,
            "customer": "cust",
            "source": "exposition",
        },
        {
            "metric": "weird",
            "labels": {"k": 'quote" back\\ tab\t nl\n é'},
            "value": -0.1,
            "series_id": 3,
            "flags": 2,
            "ms": ts,
            "customer": "cust",
            "source": "exposition",
        },
    ]


async def test_gpu_rows_and_reports_round_trip(sink: EmbeddedSink) -> None:
    c = ctx()
    ts = now_ms()
    g = GpuSample(
        ts,
        "cust",
        "coreweave",
        "acct",
        c.target,
        "node-1",
        7,
        "GPU-1234",
        "NVIDIA H100",
        mig_instance="2",
        mig_profile="1g.10gb",
        driver_version="550.54",
        pci_bus_id="00000000:1B:00.0",
        namespace="ml",
        pod="train-0",
        container="main",
        metrics={"gpu_util_percent": 87.0, "power_watts": 312.456, "prof_sm_active": 0.8125},
    )
    await sink.insert(EncodedBatch.build("gpu_samples", encode_gpus([g]), 1))
    (row,) = await select(
        sink, f"SELECT *, toUnixTimestamp64Milli(ts) AS ms FROM mcc.gpu_samples WHERE target = '{c.target}'"
    )
    assert row["ms"] == ts and row["gpu_index"] == 7 and row["mig_profile"] == "1g.10gb"
    assert row["pod"] == "train-0" and row["pci_bus_id"] == "00000000:1B:00.0"
    assert (
        row["gpu_util_percent"] == 87.0 and row["power_watts"] == 312.456 and row["prof_sm_active"] == 0.8125
    )
    assert row["fb_used_mib"] is None
    assert all(col in row for col in GPU_METRIC_COLUMNS)

    rep = ScrapeReport(
        ts,
        c,
        "http://h:9100/metrics",
        ScrapeStatus.ERROR,
        1500.5,
        samples=0,
        bytes=17,
        error="HTTP 503",
        error_reason="http_status",
        dropped=2,
    )
    await sink.insert(EncodedBatch.build("scrape_log", encode_reports([rep]), 1))
    (log_row,) = await select(
        sink,
        "SELECT kind, url, status, error, error_reason, duration_ms, samples, bytes, dropped, "
        f"toUnixTimestamp64Milli(ts) AS ms FROM mcc.scrape_log WHERE target = '{c.target}'",
    )
    assert log_row == {
        "kind": "node",
        "url": "http://h:9100/metrics",
        "status": "error",
        "error": "HTTP 503",
        "error_reason": "http_status",
        "duration_ms": 1500.5,
        "samples": 0,
        "bytes": 17,
        "dropped": 2,
        "ms": ts,
    }


async def test_same_batch_twice_is_deduplicated_by_token(sink: EmbeddedSink) -> None:
    c = ctx()
    block = SampleBlock(c, now_ms(), [Series("m", (), 1)], [1.0], [])
    batch = EncodedBatch.build("samples", encode_block(block), 1)
    await sink.insert(batch)
    await sink.insert(batch)  # a replay after an unclear failure must not double the data
    assert (await sink.execute(f"SELECT count() FROM mcc.samples WHERE target = '{c.target}'")).strip() == "1"


async def test_bad_batches_and_queries_raise_classified_sink_errors(sink: EmbeddedSink) -> None:
    with pytest.raises(SinkError) as bad_body:
        await sink.insert(EncodedBatch.build("samples", b'{"ts":"not a time"}\n', 1))
    assert bad_body.value.retryable is False and bad_body.value.code is not None
    assert sink.state() == "writing"  # a rejected batch says nothing about the store being down
    with pytest.raises(SinkError) as unknown:
        await sink.query("SELECT * FROM mcc.nope")
    assert unknown.value.code == 60 and not unknown.value.retryable
    with pytest.raises(SinkError, match="invalid table name"):
        await sink.insert(EncodedBatch.build("samples; DROP", b"{}\n", 1))
    with pytest.raises(SinkError, match="invalid deduplication token"):
        await sink.insert(EncodedBatch("samples", b"{}\n", 1, "x' OR '1", 0.0))
    with pytest.raises(SinkError, match="invalid output format"):
        await sink.query("SELECT 1", "JSON; x")
    block = SampleBlock(ctx(), now_ms(), [Series("m", (), 1)], [1.0], [])
    await sink.insert(EncodedBatch.build("samples", encode_block(block), 1))
    assert sink.state() == "writing"


async def test_batcher_writes_through_the_real_store(sink: EmbeddedSink) -> None:
    c = ctx()
    batcher = Batcher(
        sink, max_rows=100, max_bytes=1 << 20, max_age=60, max_buffer_bytes=1 << 24, observer=NullObserver()
    )
    ts = now_ms()
    for i in range(25):
        block = SampleBlock(
            c, ts + i * 1000, [Series("m", (), 1), Series("n", (), 2)], [float(i), -float(i)], []
        )
        await batcher.add("samples", encode_block(block), 2)
    await batcher.close()
    got = await select(
        sink, f"SELECT count() AS n, sum(value) AS s FROM mcc.samples WHERE target = '{c.target}'"
    )
    assert got == [{"n": 50, "s": 0}]


async def test_restart_keeps_the_data(store_path: Path) -> None:
    c = ctx()
    ts = now_ms()
    first = EmbeddedSink(store_path)
    await first.start()
    block = SampleBlock(c, ts, [Series("persist", (("a", "b"),), 9)], [42.5], [])
    await first.insert(EncodedBatch.build("samples", encode_block(block), 1))
    await first.close()
    assert first.state() == "down"
    with pytest.raises(SinkError, match="not open"):
        await first.query("SELECT 1")

    second = EmbeddedSink(store_path)
    await second.start()
    try:
        assert second.migration_report is not None and second.migration_report.applied == []
        got = await select(
            second, f"SELECT metric, labels, value FROM mcc.samples WHERE target = '{c.target}'"
        )
        assert got == [{"metric": "persist", "labels": {"a": "b"}, "value": 42.5}]
    finally:
        await second.close()


LOCK_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from multicloud_collector.sink.embedded import EmbeddedSink, StoreLockedError
    async def main():
        try:
            await EmbeddedSink(sys.argv[1]).start()
        except StoreLockedError as exc:
            print("LOCKED", exc.pid, exc)
            return 3
        print("OPENED")
        return 0
    sys.exit(asyncio.run(main()))
    """
)


async def test_second_process_gets_a_clear_lock_error(sink: EmbeddedSink, store_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCK_SCRIPT,
        str(store_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert proc.returncode == 3, text
    assert f"LOCKED {os.getpid()} the data directory {store_path} is in use by another mcc process" in text
    assert "query through it with `mcc query`" in text


async def test_missing_chdb_gives_the_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "chdb", None)  # what `import chdb` sees when it is not installed
    s = EmbeddedSink(tmp_path / "x")
    with pytest.raises(EmbeddedUnavailableError, match=r"pip install 'multicloud-collector\[embedded\]'"):
        await s.start()
    assert s.state() == "down"


async def test_second_path_in_one_process_is_refused_clearly(sink: EmbeddedSink, tmp_path: Path) -> None:
    other = EmbeddedSink(tmp_path / "other")
    with pytest.raises(SinkError, match="one data directory per process"):
        await other.start()


def test_constructor_validates_path_and_database(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'\\?' is not allowed"):
        EmbeddedSink(str(tmp_path / "db?mode=ro"))
    with pytest.raises(Exception, match="database name"):
        EmbeddedSink(tmp_path, "bad-name")
    assert EmbeddedSink(tmp_path).state() == "starting"


async def test_every_query_in_the_schema_doc_runs(sink: EmbeddedSink) -> None:
    doc = (REPO / "docs" / "schema.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", doc, flags=re.S)
    assert len(queries) >= 5
    c = ctx()
    ts = now_ms()
    g = GpuSample(
        ts, "cust", "lambda", "acct", c.target, "h", 0, "GPU-doc", "A100", metrics={"gpu_util_percent": 1.0}
    )
    await sink.insert(EncodedBatch.build("gpu_samples", encode_gpus([g]), 1))
    cpu = [
        Series("node_cpu_seconds_total", (("cpu", "0"), ("mode", m)), i)
        for i, m in ((1, "idle"), (2, "user"))
    ]
    for dt, values in ((-60_000, [100.0, 50.0]), (0, [108.0, 52.0])):
        block = SampleBlock(c, ts + dt, cpu, values, [])
        await sink.insert(EncodedBatch.build("samples", encode_block(block), 2))
    rep = ScrapeReport(
        ts, c, "http://h/metrics", ScrapeStatus.ERROR, 5.0, error="boom", error_reason="timeout"
    )
    await sink.insert(EncodedBatch.build("scrape_log", encode_reports([rep]), 1))
    for sql in queries:
        out = await sink.query(ensure_read_only(sql), "JSONEachRow")
        assert out, sql
        if "node_cpu_seconds_total" in sql:
            busy = {r["target"]: r["busy"] for r in map(orjson.loads, out.splitlines())}
            assert busy[c.target] == pytest.approx(0.2)
