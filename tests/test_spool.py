"""The disk spool: durable FIFO of encoded batches, crash recovery, bounds and policies."""

from __future__ import annotations

import asyncio
import os
import struct
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multicloud_collector.sink.base import EncodedBatch
from multicloud_collector.sink.spool import Spool, SpoolError
from multicloud_collector.sink.spool_format import (
    HEADER_SIZE,
    RecordError,
    ScanEnd,
    encode_record,
    parse_header,
    scan_segment,
)


class Recorder:
    """Observer fake: records drops and spool events."""

    def __init__(self) -> None:
        self.dropped: Counter[tuple[str, str]] = Counter()
        self.events: Counter[str] = Counter()

    def rows_dropped(self, table: str, reason: str, rows: int) -> None:
        self.dropped[(table, reason)] += rows

    def spool_event(self, event: str, count: int = 1) -> None:
        self.events[event] += count

    def insert_attempt(self, table: str, outcome: str, code: str) -> None:
        pass

    def rows_quarantined(self, table: str, rows: int) -> None:
        pass

    def sink_alert(self, name: str, active: bool) -> None:
        pass

    # the rest of observe.Observer
    def scrape_finished(self, report: object) -> None:
        pass

    def loop_lag(self, seconds: float) -> None:
        pass

    def samples_invalid(self, reason: str, count: int) -> None:
        pass

    def rows_written(self, table: str, rows: int, nbytes: int, seconds: float) -> None:
        pass

    def sink_error(self, table: str, reason: str) -> None:
        pass

    def queue_depth(self, table: str, rows: int, nbytes: int) -> None:
        pass


def batch(i: int, rows: int = 3, table: str = "samples", pad: int = 0) -> EncodedBatch:
    body = b"".join(b'{"id":%d,"row":%d,"pad":"%s"}\n' % (i, r, b"x" * pad) for r in range(rows))
    return EncodedBatch.build(table, body, rows)


def first_segment(directory: Path) -> Path:
    return next(p for p in directory.iterdir() if p.name.startswith("seg-"))


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def unwritable_target(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        return Path("/proc/mcc-spool-test")  # not creatable even for root
    tmp_path.chmod(0o500)
    return tmp_path / "spool"


async def drain(spool: Spool) -> list[EncodedBatch]:
    out = []
    while (rec := await spool.peek()) is not None:
        out.append(rec.batch)
        await spool.done(rec, delivered=True)
    return out


async def test_put_peek_done_in_order_and_bytes_are_exact(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=4096)
    await spool.open()
    sent = [batch(i, pad=i * 50) for i in range(30)]  # several segments
    for b in sent:
        await spool.put(b)
    assert spool.stats().segments > 1
    assert spool.stats().rows == 90 and spool.backlog
    got = await drain(spool)
    assert got == sent  # same bytes, same token, same order
    assert not spool.backlog and spool.stats().bytes == 0
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith("seg-")]
    await spool.close()


async def test_undelivered_batches_survive_reopen_and_delivered_ones_do_not_return(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=2048)
    await spool.open()
    sent = [batch(i, pad=100) for i in range(12)]
    for b in sent:
        await spool.put(b)
    for _ in range(5):
        rec = await spool.peek()
        assert rec is not None
        await spool.done(rec, delivered=True)
    rec = await spool.peek()
    assert rec is not None
    await spool.done(rec, delivered=False)  # a failed attempt keeps it
    await spool.close()

    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=2048)
    await again.open()
    assert again.stats().batches == 7
    assert await drain(again) == sent[5:]
    await again.close()


async def test_second_process_cannot_share_the_directory(tmp_path: Path) -> None:
    a = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    await a.open()
    b = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    with pytest.raises(SpoolError, match="in use") as err:
        await b.open()
    assert err.value.reason == "locked"
    await a.close()


async def test_torn_tail_is_cut_counted_and_the_rest_replays(tmp_path: Path) -> None:
    rec_obs = Recorder()
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 18, observer=rec_obs)  # type: ignore[arg-type]
    await spool.open()
    sent = [batch(i) for i in range(4)]
    for b in sent:
        await spool.put(b)
    await spool.close()
    seg = first_segment(tmp_path)
    whole = seg.read_bytes()
    seg.write_bytes(whole + encode_record(batch(99))[:-7])  # killed in the middle of a write

    obs = Recorder()
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 18, observer=obs)  # type: ignore[arg-type]
    await again.open()
    assert obs.events["torn_record"] == 1
    assert seg.stat().st_size == len(whole)
    assert await drain(again) == sent
    await again.close()


async def test_corrupt_record_is_cut_and_its_rows_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 18)
    await spool.open()
    sent = [batch(i, rows=5) for i in range(3)]
    for b in sent:
        await spool.put(b)
    await spool.close()
    seg = first_segment(tmp_path)
    data = bytearray(seg.read_bytes())
    second = len(encode_record(sent[0]))
    data[second + HEADER_SIZE + 20] ^= 0xFF  # flip a payload byte of the second record
    seg.write_bytes(bytes(data))

    obs = Recorder()
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 18, observer=obs)  # type: ignore[arg-type]
    await again.open()
    assert obs.events["corrupt_record"] == 1
    assert obs.dropped[("unknown", "spool_corrupt")] == 5
    assert await drain(again) == sent[:1]
    await again.close()


async def test_drop_oldest_counts_exactly_the_rows_that_never_come_back(tmp_path: Path) -> None:
    obs = Recorder()
    spool = Spool(tmp_path, max_bytes=8192, segment_bytes=2048, observer=obs)  # type: ignore[arg-type]
    await spool.open()
    sent = [batch(i, rows=4, table="samples" if i % 2 else "gpu_samples", pad=60) for i in range(60)]
    for b in sent:
        await spool.put(b)
        assert spool.stats().bytes <= 8192
    kept = await drain(spool)
    assert kept == sent[-len(kept) :]  # the oldest went first, order kept
    lost = sent[: len(sent) - len(kept)]
    assert lost
    for table in ("samples", "gpu_samples"):
        assert obs.dropped[(table, "spool_full")] == sum(b.rows for b in lost if b.table == table)
    await spool.close()


async def test_dropping_the_segment_of_an_in_flight_batch_counts_it_only_if_it_fails(tmp_path: Path) -> None:
    obs = Recorder()
    spool = Spool(tmp_path, max_bytes=4096, segment_bytes=2048, observer=obs)  # type: ignore[arg-type]
    await spool.open()
    await spool.put(batch(0, rows=7, pad=100))
    rec = await spool.peek()
    assert rec is not None
    for i in range(1, 12):
        await spool.put(batch(i, rows=1, pad=300))
    assert obs.dropped[("samples", "spool_full")] > 0
    before = obs.dropped[("samples", "spool_full")]
    await spool.done(rec, delivered=False)
    assert obs.dropped[("samples", "spool_full")] == before + 7
    await spool.close()


async def test_block_policy_waits_for_room_instead_of_dropping(tmp_path: Path) -> None:
    obs = Recorder()
    spool = Spool(tmp_path, max_bytes=4096, segment_bytes=2048, policy="block", observer=obs)  # type: ignore[arg-type]
    await spool.open()
    n = 0
    while spool.stats().bytes + len(encode_record(batch(n, pad=300))) <= 4096:
        await spool.put(batch(n, pad=300))
        n += 1
    blocked = asyncio.create_task(spool.put(batch(n, pad=300)))
    await asyncio.sleep(0)  # let it reach the wait
    for _ in range(3):
        await asyncio.sleep(0.01)
    assert not blocked.done() and obs.events["blocked"] == 1
    got = []
    while not blocked.done():
        rec = await spool.peek()
        assert rec is not None
        got.append(rec.batch)
        await spool.done(rec, delivered=True)
        await asyncio.sleep(0)
    await blocked
    got += await drain(spool)
    assert [b.body for b in got] == [batch(i, pad=300).body for i in range(n + 1)]
    assert not obs.dropped
    await spool.close()


async def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    spool = Spool(unwritable_target(tmp_path), max_bytes=1 << 20, segment_bytes=4096)
    with pytest.raises(SpoolError, match="cannot use spool directory") as err:
        await spool.open()
    assert err.value.reason == "open"
    with pytest.raises(SpoolError, match="not open"):
        await spool.put(batch(1))


async def test_batch_larger_than_half_the_spool_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4096, segment_bytes=1024)
    await spool.open()
    with pytest.raises(SpoolError) as err:
        await spool.put(batch(1, pad=3000))
    assert err.value.reason == "too_large"
    await spool.close()


def test_header_checks_reject_garbage() -> None:
    with pytest.raises(RecordError):
        parse_header(b"\x00" * HEADER_SIZE)
    with pytest.raises(RecordError):
        parse_header(b"MCS1")
    bad = bytearray(encode_record(batch(1)))
    struct.pack_into("<I", bad, 12, 1 << 31)  # body length beyond any batch
    with pytest.raises(RecordError):
        parse_header(bytes(bad))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.integers(1, 400)),
            st.tuples(st.just("deliver"), st.integers(1, 3)),
            st.tuples(st.just("fail"), st.just(0)),
            st.tuples(st.just("reopen"), st.just(0)),
            st.tuples(st.just("tear"), st.integers(1, 60)),
        ),
        max_size=40,
    )
)
def test_spool_matches_a_fifo_model_through_reopens_and_torn_writes(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]]
) -> None:
    directory = tmp_path_factory.mktemp("prop")

    async def run() -> None:
        model: list[EncodedBatch] = []
        spool = Spool(directory, max_bytes=1 << 22, segment_bytes=1500)
        await spool.open()
        for i, (op, arg) in enumerate(ops):
            if op == "put":
                b = batch(i, rows=1 + arg % 5, pad=arg)
                await spool.put(b)
                model.append(b)
            elif op in ("deliver", "fail"):
                for _ in range(max(arg, 1)):
                    rec = await spool.peek()
                    assert (rec is None) == (not model)
                    if rec is None:
                        break
                    assert rec.batch == model[0]
                    await spool.done(rec, delivered=op == "deliver")
                    if op == "deliver":
                        model.pop(0)
            else:
                await spool.close()
                if op == "tear":  # a write that never completed: garbage after the last record
                    segs = sorted(p for p in directory.iterdir() if p.name.startswith("seg-"))
                    if segs:
                        append_bytes(segs[-1], encode_record(batch(10_000 + i))[:arg])
                spool = Spool(directory, max_bytes=1 << 22, segment_bytes=1500)
                await spool.open()
            assert spool.stats().batches == len(model)
            assert spool.stats().rows == sum(b.rows for b in model)
        assert await drain(spool) == model
        await spool.close()
        for p in directory.iterdir():
            if p.name.startswith("seg-"):
                assert scan_segment(str(p)).end is ScanEnd.CLEAN

    asyncio.run(run())
