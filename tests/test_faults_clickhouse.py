"""Fault injection on the ClickHouse path: every test checks the exact multiset of row ids that arrived.

Outages, restarts, hangs, answers lost after commit, bad credentials, a full spool (both policies),
a full disk and an unwritable spool directory, and ``kill -9`` of a writer process followed by a
replay. The batcher + sink + spool run as in the daemon; the server is the chDB-backed HTTP server.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.ch_http_server import ChServer
from test_sink_clickhouse import build_sink, new_db, received_ids, sample_batch, sample_rows, wait_for

from multicloud_collector.selfmetrics import SelfMetrics
from multicloud_collector.sink.batcher import Batcher
from multicloud_collector.sink.clickhouse import ClickHouseSink
from multicloud_collector.sink.spool import Spool

REPO = Path(__file__).resolve().parents[1]
CHUNK = 50  # ids per batcher.add call


@pytest.fixture(scope="module")
def chserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChServer]:
    server = ChServer(tmp_path_factory.mktemp("chf") / "db", password="pw-faults")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def up(chserver: ChServer) -> Iterator[ChServer]:
    """The server, guaranteed running and fault-free before and after the test."""
    if not chserver.running:
        chserver.start()
    chserver.reset()
    yield chserver
    if not chserver.running:
        chserver.start()
    chserver.reset()


class Pipeline:
    def __init__(self, sink: ClickHouseSink, metrics: SelfMetrics, **batch_kw: int | float) -> None:
        self.sink, self.metrics = sink, metrics
        self.batcher = Batcher(
            sink,
            max_rows=int(batch_kw.get("max_rows", 200)),
            max_bytes=int(batch_kw.get("max_bytes", 1 << 20)),
            max_age=float(batch_kw.get("max_age", 0.1)),
            max_buffer_bytes=int(batch_kw.get("max_buffer_bytes", 8 << 20)),
            observer=metrics,
            spool=sink.spool,
        )
        self.sent: Counter[int] = Counter()

    async def feed(self, start: int, stop: int) -> None:
        for i in range(start, stop, CHUNK):
            ids = range(i, min(i + CHUNK, stop))
            await self.batcher.add("samples", sample_rows(ids), len(ids))
            self.sent.update(ids)

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def dropped(self, reason: str) -> float:
        return self.metric("mcc_sink_rows_dropped_total", table="samples", reason=reason)


@pytest.fixture
async def pipe(up: ChServer, tmp_path: Path) -> AsyncIterator[Pipeline]:
    metrics = SelfMetrics()
    sink = build_sink(up, tmp_path, new_db(), observer=metrics, timeout=2.0)
    await sink.start()
    p = Pipeline(sink, metrics)
    p.batcher.start()
    try:
        yield p
    finally:
        await p.batcher.close(grace=5)
        await sink.close()


async def settle(p: Pipeline, server: ChServer, limit: float = 60) -> None:
    """Flush and wait until the server holds every id sent (the replayer drains the spool)."""
    await p.batcher.flush()
    await wait_for(lambda: received_ids(server, p.sink.database) == p.sent, limit, "every row exactly once")
    await wait_for(lambda: not p.sink.spool.backlog and p.sink.state() == "writing", 10, "an empty spool")


async def test_clickhouse_down_for_a_while(pipe: Pipeline, up: ChServer) -> None:
    await pipe.feed(0, 1000)
    await asyncio.to_thread(up.stop)
    await pipe.feed(1000, 3000)
    await pipe.batcher.flush()  # everything is now either written or spooled
    assert pipe.sink.spool.backlog and pipe.sink.state() == "retrying"
    assert pipe.metric("mcc_spool_events_total", event="spooled_rows") > 0
    await pipe.feed(3000, 3500)  # still down: queues behind the backlog
    await asyncio.to_thread(up.start)
    await settle(pipe, up)
    assert pipe.sink.state() == "writing"
    assert pipe.dropped("spool_full") == 0 and pipe.dropped("buffer_full") == 0


async def test_clickhouse_killed_mid_insert_and_restarted(pipe: Pipeline, up: ChServer) -> None:
    feeding = asyncio.create_task(pipe.feed(0, 6000))
    await wait_for(lambda: up.stats()["inserts"] >= 3, 20, "a few inserts")
    await asyncio.to_thread(up.kill)
    await feeding
    await asyncio.to_thread(up.start)
    await settle(pipe, up)


async def test_hanging_server_times_out_then_recovers(pipe: Pipeline, up: ChServer) -> None:
    await pipe.feed(0, 500)
    await pipe.batcher.flush()
    up.hang(True)
    await pipe.feed(500, 1500)
    await wait_for(lambda: pipe.sink.spool.backlog, 20, "the hung inserts to be spooled")
    assert pipe.sink.state() == "retrying"
    assert pipe.metric("mcc_sink_insert_attempts_total", table="samples", outcome="retry", code="timeout") > 0
    up.hang(False)
    await settle(pipe, up)


async def test_answer_lost_after_commit_is_not_duplicated(pipe: Pipeline, up: ChServer) -> None:
    up.drop_after_commit(times=4)
    await pipe.feed(0, 2000)
    await settle(pipe, up)
    assert up.stats()["drops_injected"] == 4  # four commits whose answer never arrived, no duplicate


@pytest.mark.parametrize(("code", "status"), [(252, 500), (202, 500), (159, 408), (1002, 500), (0, 503)])
async def test_transient_server_errors_are_retried_with_the_same_batch(
    pipe: Pipeline, up: ChServer, code: int, status: int
) -> None:
    if code:
        up.fail_inserts(code, times=3, status=status)
    else:  # a 5xx with no exception code at all
        up.fail_inserts(1002, times=3, status=503)
    await pipe.feed(0, 600)
    await settle(pipe, up)
    assert pipe.dropped("permanent_error") == 0


async def test_bad_credentials_keep_data_and_deliver_after_the_fix(tmp_path: Path) -> None:
    server = ChServer(tmp_path / "auth-db", password="new-password")
    server.start()
    metrics = SelfMetrics()
    db = new_db()
    sink = build_sink(server, tmp_path, db, password="old-password", observer=metrics)
    await sink.start()  # must not fail: the server refuses, the data waits
    p = Pipeline(sink, metrics)
    p.batcher.start()
    try:
        await p.feed(0, 800)
        await p.batcher.flush()
        assert sink.spool.backlog and sink.state() == "retrying"
        assert "AUTHENTICATION_FAILED" in sink.last_error or "516" in sink.last_error
        assert "old-password" not in sink.last_error
        assert p.metric("mcc_sink_alert", alert="permanent_error") == 1
        assert (
            p.metric("mcc_sink_insert_attempts_total", table="samples", outcome="permanent", code="516") >= 1
        )
        # the operator fixes the server's user: no collector restart
        await asyncio.to_thread(server.stop)
        server.password = "old-password"
        await asyncio.to_thread(server.start)
        await settle(p, server)
        assert p.metric("mcc_sink_alert", alert="permanent_error") == 0
    finally:
        await p.batcher.close(grace=5)
        await sink.close()
        server.stop()


async def test_spool_full_drop_oldest_counts_exactly(up: ChServer, tmp_path: Path) -> None:
    metrics = SelfMetrics()
    sink = build_sink(up, tmp_path, new_db(), observer=metrics, spool_bytes=96 << 10, segment_bytes=16 << 10)
    await sink.start()
    p = Pipeline(sink, metrics, max_bytes=12 << 10)
    p.batcher.start()
    try:
        await asyncio.to_thread(up.stop)
        await p.feed(0, 4000)
        await p.batcher.flush()
        assert sink.spool.stats().bytes <= 96 << 10
        dropped = p.dropped("spool_full")
        assert dropped > 0
        await asyncio.to_thread(up.start)
        await p.batcher.flush()
        await wait_for(lambda: not sink.spool.backlog, 30, "the spool to drain")
        got = received_ids(up, sink.database)
        assert max(got.values()) == 1  # no duplicates
        assert set(got) <= set(p.sent)
        assert sum(got.values()) + dropped == sum(p.sent.values())  # every row: written or counted
        assert max(set(p.sent) - set(got)) < max(got)  # the oldest went first
    finally:
        await p.batcher.close(grace=5)
        await sink.close()


async def test_spool_full_block_policy_applies_backpressure(up: ChServer, tmp_path: Path) -> None:
    metrics = SelfMetrics()
    sink = build_sink(
        up, tmp_path, new_db(), observer=metrics, spool_bytes=64 << 10, segment_bytes=16 << 10, policy="block"
    )
    await sink.start()
    p = Pipeline(sink, metrics, max_bytes=12 << 10, max_buffer_bytes=48 << 10)
    p.batcher.backpressure_timeout = 0.05
    p.batcher.start()
    try:
        await asyncio.to_thread(up.stop)
        await p.feed(0, 4000)
        assert sink.spool.stats().bytes <= 64 << 10
        assert p.metric("mcc_spool_events_total", event="blocked") >= 1
        assert p.dropped("spool_full") == 0
        buffer_drops = p.dropped("buffer_full")  # the batcher's bounded memory took the pressure
        assert buffer_drops > 0
        await asyncio.to_thread(up.start)
        await p.batcher.flush()
        await wait_for(lambda: not sink.spool.backlog, 30, "the spool to drain")
        got = received_ids(up, sink.database)
        assert max(got.values()) == 1 and set(got) <= set(p.sent)
        assert sum(got.values()) + buffer_drops == sum(p.sent.values())
    finally:
        await p.batcher.close(grace=5)
        await sink.close()


async def test_unwritable_spool_directory_alerts_and_keeps_rows_in_memory(
    up: ChServer, tmp_path: Path
) -> None:
    metrics = SelfMetrics()
    sink = build_sink(up, tmp_path, new_db(), observer=metrics)
    sink.spool.directory = Path("/proc/mcc-no-spool-here")  # cannot be created, even by root
    await sink.start()
    p = Pipeline(sink, metrics)
    p.batcher.retry_base, p.batcher.retry_max = 0.05, 0.2
    p.batcher.start()
    try:
        assert p.metric("mcc_sink_alert", alert="spool_unavailable") == 1
        await p.feed(0, 300)
        await p.batcher.flush()
        await asyncio.to_thread(up.stop)
        await p.feed(300, 600)  # down and no spool: the batcher retries in memory
        await wait_for(
            lambda: p.metric("mcc_sink_errors_total", table="samples", reason="spool_closed") > 0,
            20,
            "a counted spool failure",
        )
        await asyncio.to_thread(up.start)
        await p.batcher.flush()
        assert received_ids(up, sink.database) == p.sent
    finally:
        await p.batcher.close(grace=5)
        await sink.close()


_DISK_FULL_WRITER = textwrap.dedent(
    """
    import asyncio, json, resource, signal, sys
    sys.path.insert(0, sys.argv[2])
    from test_sink_clickhouse import sample_batch
    from multicloud_collector.sink.spool import Spool, SpoolError

    async def main():
        spool = Spool(sys.argv[1], max_bytes=1 << 30, segment_bytes=1 << 20)
        await spool.open()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, resource.RLIM_INFINITY))
        ok = 0
        for i in range(1000):
            try:
                await spool.put(sample_batch(range(i * 20, i * 20 + 20)))
                ok += 1
            except SpoolError as exc:
                print(json.dumps({"ok": ok, "reason": exc.reason, "error": str(exc)}), flush=True)
                break
        await spool.close()
    asyncio.run(main())
    """
)


async def test_disk_full_is_a_clear_counted_error_and_the_spool_stays_valid(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DISK_FULL_WRITER,
        str(tmp_path / "spool"),
        str(REPO / "tests"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["reason"] == "disk_full" and "cannot write to spool" in result["error"]
    assert result["ok"] > 0
    spool = Spool(tmp_path / "spool", max_bytes=1 << 30, segment_bytes=1 << 20)
    await spool.open()
    assert spool.stats().batches == result["ok"]  # every acknowledged batch, nothing half-written
    await spool.close()


# -- kill -9 of a writer process, then replay ---------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, sys.argv[5])
    from support.ch_http_server import ChServer
    from test_sink_clickhouse import build_sink, sample_batch
    from multicloud_collector.sink.base import SinkError

    class Srv:  # what build_sink needs of a server
        url, user, password = sys.argv[1], "default", sys.argv[2]

    async def main():
        from pathlib import Path
        sink = build_sink(Srv, Path(sys.argv[3]), sys.argv[4], timeout=1.0)
        await sink.start()
        start, stop = int(sys.argv[6]), int(sys.argv[7])
        for i in range(start, stop, 40):
            b = sample_batch(range(i, i + 40))
            if sink.spool.backlog:
                await sink.spool.put(b)
            else:
                try:
                    await sink.insert(b)
                except SinkError:
                    await sink.spool.put(b)
            print("ACK", i, flush=True)
        while sink.spool.backlog:
            await asyncio.sleep(0.05)
        print("DRAINED", flush=True)
        await sink.close()
    asyncio.run(main())
    """
)


def _writer(server: ChServer, tmp: Path, db: str, start: int, stop: int) -> subprocess.Popen[str]:
    args = [server.url, server.password, str(tmp), db, str(REPO / "tests"), str(start), str(stop)]
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=str(REPO),
    )


def _read_acks(proc: subprocess.Popen[str], until: int) -> set[int]:
    acks: set[int] = set()
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ACK"):
            acks.add(int(line.split()[1]))
            if len(acks) >= until:
                break
        elif line.startswith("DRAINED"):
            break
    return acks


@pytest.mark.slow
def test_kill_9_during_writes_then_restart_replays_without_duplicates(up: ChServer, tmp_path: Path) -> None:
    db = new_db()
    rng = random.Random(11)
    acked: set[int] = set()
    for round_ in range(3):
        proc = _writer(up, tmp_path, db, round_ * 4000, round_ * 4000 + 4000)
        acked |= _read_acks(proc, rng.randint(10, 25))
        if round_ == 1:
            up.stop()  # writes go to the spool now
            acked |= _read_acks(proc, rng.randint(5, 20))
            up.start()
        acked |= _read_acks(proc, rng.randint(1, 15))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    replay = _writer(up, tmp_path, db, 0, 0)  # no new rows: only the spool
    assert replay.stdout is not None
    assert "DRAINED" in replay.stdout.read()
    replay.wait(30)
    got = received_ids(up, db)
    assert max(got.values()) == 1, "duplicates after kill -9 and replay"
    for start in acked:
        for i in range(start, start + 40):
            assert got[i] == 1, f"acknowledged row {i} lost"
    assert len(acked) >= 30


def test_rlimit_is_available() -> None:
    assert resource.RLIMIT_FSIZE >= 0  # the disk-full test relies on it (Linux)


async def test_replay_is_paced(up: ChServer, tmp_path: Path) -> None:
    """With a backlog of 10 batches of 100 rows and 2000 rows/s, draining takes >= 0.45 s of pacing."""
    sink = build_sink(up, tmp_path, new_db(), replay_rate=2000)
    await sink.start()
    try:
        await sink.spool.put(sample_batch(range(0, 100)))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(1, 10):
            await sink.spool.put(sample_batch(range(i * 100, i * 100 + 100)))
        await wait_for(lambda: not sink.spool.backlog, 30, "the spool to drain")
        assert sink._next_slot - started >= 0.45  # the pacing schedule, not a wall-clock assert
        assert received_ids(up, sink.database) == Counter(range(1000))
    finally:
        await sink.close()


# -- the real collector process: mcc migrate / query, then kill -9 of `mcc run` and a restart ----


def _collector_config(server: ChServer, tmp: Path, db: str, fleet: object) -> Path:
    import yaml

    from multicloud_collector.demo.config import demo_config

    cfg = demo_config(fleet, tmp, listen="127.0.0.1:0", interval="1s")  # type: ignore[arg-type]
    cfg["sink"] = {
        "kind": "clickhouse",
        "batch": {"max_age": "300ms"},
        "clickhouse": {
            "url": server.url,
            "database": db,
            "password": "${MCC_TEST_CH_PASSWORD}",
            "timeout": "2s",
            "retry_initial": "50ms",
            "retry_max": "300ms",
        },
    }
    path = tmp / "mcc.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _spooled_rows(directory: Path) -> set[tuple[int, float]]:
    """(series_id, ts) of every samples row left in a spool, read offline like a restart would."""
    import orjson

    async def read(where: Path) -> set[tuple[int, float]]:
        spool = Spool(where, max_bytes=1 << 30, segment_bytes=64 << 20)
        await spool.open()
        out: set[tuple[int, float]] = set()
        while (rec := await spool.peek()) is not None:
            if rec.batch.table == "samples":
                for line in rec.batch.body.splitlines():
                    row = orjson.loads(line)
                    out.add((int(row["series_id"]), round(float(row["ts"]), 3)))
            await spool.done(rec, delivered=True)  # only in this throw-away copy
        await spool.close()
        return out

    import shutil

    copy = directory.parent / "spool-copy"
    shutil.copytree(directory, copy)
    try:
        return asyncio.run(read(copy))
    finally:
        shutil.rmtree(copy)


def _run_cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multicloud_collector", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=str(REPO),
    )


@pytest.mark.slow
def test_collector_migrate_query_then_kill_9_and_restart_replays_exactly(
    up: ChServer, tmp_path: Path
) -> None:
    from support.fleet_thread import fleet_in_thread
    from test_sink_clickhouse import wait_for

    db = new_db()
    env = {**os.environ, "MCC_TEST_CH_PASSWORD": up.password}
    with fleet_in_thread(seed=5, hosts_per_provider=1, providers=("vultr", "runpod")) as fleet:
        cfg = _collector_config(up, tmp_path, db, fleet)
        dry = _run_cli("migrate", "--dry-run", "-c", str(cfg), env=env)
        assert dry.returncode == 0, dry.stderr
        assert f"CREATE TABLE IF NOT EXISTS {db}.samples" in dry.stdout
        assert up.password not in dry.stdout + dry.stderr
        real = _run_cli("migrate", "-c", str(cfg), env=env)
        assert real.returncode == 0 and "applied 0001" in real.stdout, real.stderr
        spool_dir = tmp_path / "state" / "spool"

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "multicloud_collector", "run", "-c", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=str(REPO),
            )

        def count() -> int:
            q = _run_cli("query", "-c", str(cfg), "SELECT count() FROM samples", "-f", "TSV", env=env)
            return int(q.stdout.strip()) if q.returncode == 0 else -1

        proc = start()
        try:
            asyncio.run(wait_for(lambda: count() > 0, 60, "rows through `mcc query`"))
            up.stop()
            asyncio.run(wait_for(lambda: bool(_spooled_rows(spool_dir)), 60, "rows in the spool"))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            spooled = _spooled_rows(spool_dir)
            up.start()
            proc = start()  # replays the spool, keeps collecting
            ids_ts = f"SELECT series_id, round(toFloat64(ts), 3) FROM {db}.samples FORMAT TSV"

            def delivered() -> bool:
                got = {
                    (int(a), round(float(b), 3))
                    for a, b in (x.split("\t") for x in up.query(ids_ts).split("\n") if x)
                }
                return spooled <= got

            asyncio.run(wait_for(delivered, 90, "every spooled row on the server"))
            segments = lambda: [p for p in spool_dir.iterdir() if p.name.startswith("seg-")]  # noqa: E731
            asyncio.run(wait_for(lambda: not segments(), 60, "the spool files to be deleted once delivered"))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        dup = up.query(f"SELECT count() - uniqExact(series_id, ts) FROM {db}.samples").strip()
        assert dup == "0", f"{dup} duplicate rows"
