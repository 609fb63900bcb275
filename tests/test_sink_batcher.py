"""Batcher: thresholds, age flush, backpressure, drop-oldest accounting, retries, ordering.

The sink boundary is the ``Sink`` protocol, so a small in-process sink records what it receives
and can fail or block on command.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

from multicloud_collector.model import ScrapeReport
from multicloud_collector.sink.base import EncodedBatch, SinkError, is_retryable_code, parse_error_code
from multicloud_collector.sink.batcher import Batcher

DEADLINE = 10.0


@dataclass
class RecordingObserver:
    written: list[tuple[str, int, int]] = field(default_factory=list)
    dropped: list[tuple[str, str, int]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    depth: list[tuple[str, int, int]] = field(default_factory=list)

    def scrape_finished(self, report: ScrapeReport) -> None:
        pass

    def loop_lag(self, seconds: float) -> None:
        pass

    def samples_invalid(self, reason: str, count: int) -> None:
        pass

    def rows_written(self, table: str, rows: int, nbytes: int, seconds: float) -> None:
        self.written.append((table, rows, nbytes))

    def sink_error(self, table: str, reason: str) -> None:
        self.errors.append((table, reason))

    def rows_dropped(self, table: str, reason: str, rows: int) -> None:
        self.dropped.append((table, reason, rows))

    def queue_depth(self, table: str, rows: int, nbytes: int) -> None:
        self.depth.append((table, rows, nbytes))

    def dropped_rows(self, reason: str) -> int:
        return sum(n for _, r, n in self.dropped if r == reason)


class FakeSink:
    """Records batches; can block on ``gate``, fail ``fail_times`` times, and checks concurrency."""

    def __init__(self, *, fail_times: int = 0, error: Exception | None = None, forever: bool = False) -> None:
        self.batches: list[EncodedBatch] = []
        self.attempts = 0
        self.fail_times = fail_times
        self.forever = forever
        self.error = error or SinkError("Code: 252. Too many parts", retryable=True, code=252)
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()
        self.inflight: dict[str, int] = defaultdict(int)
        self.max_inflight: dict[str, int] = defaultdict(int)
        self.changed = asyncio.Condition()

    async def start(self) -> None:
        pass

    async def insert(self, batch: EncodedBatch) -> None:
        self.attempts += 1
        self.inflight[batch.table] += 1
        self.max_inflight[batch.table] = max(self.max_inflight[batch.table], self.inflight[batch.table])
        self.started.set()
        try:
            await self.gate.wait()
            await asyncio.sleep(0)  # give a concurrent insert of the same table a chance to show up
            if self.forever or self.fail_times > 0:
                self.fail_times -= 1
                raise self.error
            self.batches.append(batch)
        finally:
            self.inflight[batch.table] -= 1
            async with self.changed:
                self.changed.notify_all()

    async def wait_rows(self, rows: int) -> None:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: sum(b.rows for b in self.batches) >= rows), DEADLINE
            )

    async def execute(self, sql: str) -> str:
        return ""

    async def query(self, sql: str, fmt: str = "PrettyCompact") -> bytes:
        return b""

    def state(self) -> str:
        return "writing"

    async def close(self) -> None:
        pass


def lines(n: int, tag: str = "r") -> bytes:
    return b"".join(b'{"%s":%d}\n' % (tag.encode(), i) for i in range(n))


def make(sink: FakeSink, obs: RecordingObserver, **kw: float) -> Batcher:
    opts: dict[str, float] = {
        "max_rows": 1000,
        "max_bytes": 1 << 20,
        "max_age": 60.0,
        "max_buffer_bytes": 1 << 20,
        "retry_base": 0.001,
        "retry_max": 0.01,
        "backpressure_timeout": 0.05,
    }
    opts.update(kw)
    return Batcher(
        sink,
        max_rows=int(opts["max_rows"]),
        max_bytes=int(opts["max_bytes"]),
        max_age=opts["max_age"],
        max_buffer_bytes=int(opts["max_buffer_bytes"]),
        observer=obs,
        backpressure_timeout=opts["backpressure_timeout"],
        retry_base=opts["retry_base"],
        retry_max=opts["retry_max"],
    )


async def test_rows_threshold_seals_one_batch_with_all_lines_in_order() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    b = make(sink, obs, max_rows=10)
    chunks = [lines(4, "a"), lines(4, "b"), lines(4, "c")]
    for c in chunks:
        await b.add("samples", c, 4)
    await sink.wait_rows(12)
    assert len(sink.batches) == 1
    batch = sink.batches[0]
    assert batch.rows == 12 and batch.body == b"".join(chunks) and batch.table == "samples"
    assert obs.written == [("samples", 12, len(batch.body))]
    await b.close()


async def test_bytes_threshold_seals_before_rows() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    b = make(sink, obs, max_rows=10_000, max_bytes=50)
    await b.add("t", lines(3), 3)
    assert sink.batches == [] and b.queued_rows("t") == 3
    await b.add("t", lines(5), 5)  # now > 50 bytes
    await sink.wait_rows(8)
    assert [x.rows for x in sink.batches] == [8]
    await b.close()


async def test_age_flush_without_reaching_thresholds() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    b = make(sink, obs, max_age=0.05)
    b.start()
    await b.add("scrape_log", lines(2), 2)
    await sink.wait_rows(2)
    assert sink.batches[0].rows == 2
    await b.close()


async def test_flush_writes_everything_and_close_is_clean() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    b = make(sink, obs)
    await b.add("a", lines(3), 3)
    await b.add("b", lines(2), 2)
    await b.flush()
    assert sorted((x.table, x.rows) for x in sink.batches) == [("a", 3), ("b", 2)]
    assert b.buffered_bytes == 0
    assert obs.depth[-1][1:] == (0, 0)
    await b.close()
    assert obs.dropped == []
    with pytest.raises(RuntimeError, match="closed"):
        await b.add("a", lines(1), 1)


async def test_drop_oldest_buffered_rows_with_exact_counts() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    b = make(sink, obs, max_buffer_bytes=100)
    a, bb, c, d = b"x" * 29 + b"\n", b"y" * 29 + b"\n", b"z" * 29 + b"\n", b"w" * 29 + b"\n"
    await b.add("t", a, 3)
    await b.add("u", bb, 2)
    await b.add("t", c, 4)
    assert b.buffered_bytes == 90
    await b.add("u", d, 1)  # 120 > 100: waits briefly, then drops the oldest chunk (a, 3 rows)
    assert obs.dropped == [("t", "buffer_full", 3)]
    assert b.buffered_bytes == 90
    await b.flush()
    written = {t: r for t, r, _ in obs.written}
    assert written == {"t": 4, "u": 3}
    assert sum(written.values()) + obs.dropped_rows("buffer_full") == 10
    assert sink.batches[[x.table for x in sink.batches].index("t")].body == c
    await b.close()


async def test_drop_prefers_oldest_queued_batch_and_never_the_one_in_flight() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    sink.gate.clear()
    b = make(sink, obs, max_rows=2, max_buffer_bytes=50)
    batch1, batch2, batch3, batch4 = (b"%d" % i * 9 + b"\n" for i in range(1, 5))  # 10 bytes each
    await b.add("t", batch1 + batch1, 2)  # sealed, goes in flight
    await asyncio.wait_for(sink.started.wait(), DEADLINE)
    await b.add("t", batch2 + batch2, 2)  # sealed, queued behind
    await b.add("t", batch3 + batch3, 2)  # 40 + 20 > 50: drops batch2 (oldest not in flight)
    assert obs.dropped == [("t", "buffer_full", 2)]
    await b.add("t", batch4 + batch4, 2)  # in flight 1 + queued 3 + 4 > 50: drops batch3
    assert obs.dropped == [("t", "buffer_full", 2), ("t", "buffer_full", 2)]
    sink.gate.set()
    await b.flush()
    assert [x.body for x in sink.batches] == [batch1 * 2, batch4 * 2]
    await b.close()


async def test_incoming_rows_dropped_when_only_in_flight_data_remains() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    sink.gate.clear()
    b = make(sink, obs, max_rows=1, max_buffer_bytes=40)
    await b.add("t", b"a" * 29 + b"\n", 1)
    await asyncio.wait_for(sink.started.wait(), DEADLINE)
    await b.add("t", b"b" * 29 + b"\n", 5)
    assert obs.dropped == [("t", "buffer_full", 5)]
    sink.gate.set()
    await b.flush()
    assert [x.rows for x in sink.batches] == [1]
    await b.close()


async def test_backpressure_waits_for_space_instead_of_dropping() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    sink.gate.clear()
    b = make(sink, obs, max_rows=1, max_buffer_bytes=40, backpressure_timeout=DEADLINE)
    await b.add("t", b"a" * 29 + b"\n", 1)
    await asyncio.wait_for(sink.started.wait(), DEADLINE)
    task = asyncio.create_task(b.add("t", b"b" * 29 + b"\n", 1))
    await asyncio.sleep(0)
    assert not task.done()  # blocked: no room until the in-flight batch is written
    sink.gate.set()
    await asyncio.wait_for(task, DEADLINE)
    await b.flush()
    assert obs.dropped == []
    assert [x.rows for x in sink.batches] == [1, 1]
    await b.close()


async def test_data_larger_than_whole_buffer_is_dropped_and_counted() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    b = make(sink, obs, max_buffer_bytes=10)
    await b.add("t", b"x" * 11, 7)
    assert obs.dropped == [("t", "buffer_full", 7)]
    await b.add("t", b"", 0)  # nothing to do
    await b.close()
    assert sink.batches == []


async def test_retry_then_success_keeps_the_batch() -> None:
    sink, obs = FakeSink(fail_times=3), RecordingObserver()
    b = make(sink, obs)
    await b.add("samples", lines(5), 5)
    await asyncio.wait_for(b.flush(), DEADLINE)
    assert sink.attempts == 4
    assert [x.rows for x in sink.batches] == [5]
    assert obs.errors == [("samples", "252")] * 3
    assert obs.written == [("samples", 5, len(lines(5)))]
    assert obs.dropped == []
    await b.close()


async def test_unexpected_exceptions_are_retried() -> None:
    sink, obs = FakeSink(fail_times=1, error=ConnectionResetError("reset")), RecordingObserver()
    b = make(sink, obs)
    await b.add("t", lines(1), 1)
    await asyncio.wait_for(b.flush(), DEADLINE)
    assert obs.errors == [("t", "ConnectionResetError")]
    assert len(sink.batches) == 1
    await b.close()


async def test_permanent_error_drops_the_batch_with_its_rows() -> None:
    err = SinkError.from_message(
        "Code: 27. DB::Exception: Cannot parse input (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"
    )
    sink, obs = FakeSink(fail_times=1, error=err), RecordingObserver()
    b = make(sink, obs)
    await b.add("t", lines(6), 6)
    await b.add("t", lines(1), 1)
    await asyncio.wait_for(b.flush(), DEADLINE)
    assert obs.dropped == [("t", "permanent_error", 7)]
    assert obs.errors == [("t", "27")]
    assert sink.batches == [] and sink.attempts == 1
    await b.add("t", lines(2), 2)  # the table keeps working afterwards
    await b.flush()
    assert [x.rows for x in sink.batches] == [2]
    await b.close()


async def test_close_counts_rows_the_sink_never_accepted() -> None:
    sink, obs = FakeSink(forever=True), RecordingObserver()
    b = make(sink, obs)
    b.start()
    await b.add("t", lines(3), 3)
    await b.add("u", lines(4), 4)
    await b.close(grace=0.2)
    assert sorted(obs.dropped) == [("t", "shutdown", 3), ("u", "shutdown", 4)]
    assert b.buffered_bytes == 0


async def test_per_table_order_and_no_concurrent_inserts() -> None:
    sink, obs = FakeSink(), RecordingObserver()
    b = make(sink, obs, max_rows=1)
    for i in range(30):
        await b.add("a", b'{"i":%d}\n' % i, 1)
        await b.add("b", b'{"i":%d}\n' % i, 1)
    await b.flush()
    for table in ("a", "b"):
        bodies = [x.body for x in sink.batches if x.table == table]
        assert bodies == [b'{"i":%d}\n' % i for i in range(30)]
        assert sink.max_inflight[table] == 1
    await b.close()


def test_invalid_settings_name_the_field() -> None:
    sink, obs = FakeSink.__new__(FakeSink), RecordingObserver()
    with pytest.raises(ValueError, match="max_rows"):
        Batcher(sink, max_rows=0, max_bytes=1, max_age=1, max_buffer_bytes=1, observer=obs)
    with pytest.raises(ValueError, match="max_age"):
        Batcher(sink, max_rows=1, max_bytes=1, max_age=0, max_buffer_bytes=1, observer=obs)


def test_encoded_batch_token_is_deterministic_per_table_and_body() -> None:
    a = EncodedBatch.build("samples", b"x\n", 1)
    assert a.token == EncodedBatch.build("samples", b"x\n", 1).token
    assert a.token != EncodedBatch.build("gpu_samples", b"x\n", 1).token
    assert a.token != EncodedBatch.build("samples", b"y\n", 1).token
    assert len(a.token) == 64 and a.nbytes == 2


@pytest.mark.parametrize(
    ("message", "code", "retryable"),
    [
        ("Code: 60. DB::Exception: Unknown table (UNKNOWN_TABLE)", 60, False),
        ("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist", 60, False),
        ("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)", 252, True),
        ("Streaming insert finish failed: Code: 27. DB::Exception: Cannot parse", 27, False),
        ("connection reset", None, True),
    ],
)
def test_error_classification(message: str, code: int | None, retryable: bool) -> None:
    assert parse_error_code(message) == code
    assert is_retryable_code(code) is retryable
    err = SinkError.from_message(message)
    assert (err.code, err.retryable) == (code, retryable)
    assert err.reason == (str(code) if code is not None else "SinkError")


class ExplodingObserver(RecordingObserver):
    def __init__(self) -> None:
        super().__init__()
        self.explode = True

    def rows_written(self, table: str, rows: int, nbytes: int, seconds: float) -> None:
        if self.explode:
            self.explode = False
            raise RuntimeError("observer bug")
        super().rows_written(table, rows, nbytes, seconds)


async def test_a_writer_that_died_is_replaced_and_waiters_wake() -> None:
    sink, obs = FakeSink(), ExplodingObserver()
    b = make(sink, obs)
    await b.add("t", lines(1), 1)
    first = asyncio.create_task(b.flush())
    await sink.wait_rows(1)  # the insert happened, then the observer raised inside the writer
    await b.add("t", lines(2), 2)
    await asyncio.wait_for(b.flush(), DEADLINE)
    await asyncio.wait_for(first, DEADLINE)
    assert [x.rows for x in sink.batches][-1] == 2 and obs.written[-1] == ("t", 2, len(lines(2)))
    await b.close()
