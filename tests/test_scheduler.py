"""Scheduler behaviour against real loopback HTTP servers (short intervals, event-driven waits)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from support.services import AppServers

from multicloud_collector.loopmon import LoopLagMonitor
from multicloud_collector.model import ScrapeOutput, ScrapeReport, ScrapeStatus, TargetContext
from multicloud_collector.observe import NullObserver
from multicloud_collector.scheduler import (
    Scheduler,
    effective_timeout,
    first_tick,
    phase_offset,
    retry_fits,
)
from multicloud_collector.scrape.base import RetryPolicy, Target, fetch_error_report, now_ms, ok_report
from multicloud_collector.scrape.http import FetchError, fetch


class ProbeScraper:
    """A minimal real scraper: GET the URL, report ok or the fetch error."""

    kind = "probe"

    async def scrape(self, target: Target, session: aiohttp.ClientSession) -> ScrapeOutput:
        ts, t0 = now_ms(), time.monotonic()
        try:
            res = await fetch(session, target.url, timeout=target.timeout, max_bytes=1 << 20, accept="*/*")
        except FetchError as exc:
            return ScrapeOutput(report=fetch_error_report(target, ts, time.monotonic() - t0, exc))
        return ScrapeOutput(report=ok_report(target, ts, res.duration_s, samples=1, nbytes=res.nbytes))


class CrashingScraper:
    kind = "crash"

    async def scrape(self, target: Target, session: aiohttp.ClientSession) -> ScrapeOutput:
        raise RuntimeError("plugin bug")


SCRAPERS: dict[str, Any] = {"probe": ProbeScraper(), "crash": CrashingScraper()}


def make_target(
    tid: str,
    url: str,
    *,
    interval: float = 0.2,
    timeout: float = 0.15,
    retries: RetryPolicy | None = None,
    kind: str = "probe",
) -> Target:
    ctx = TargetContext("cust", "prov", "acct", tid, kind, kind)
    return Target(
        ctx=ctx, url=url, interval=interval, timeout=timeout, retries=retries or RetryPolicy(1, 0.01, 0.01)
    )


class Outputs:
    """``on_output`` sink that lets a test wait for a condition instead of sleeping."""

    def __init__(self) -> None:
        self.items: list[ScrapeOutput] = []
        self._changed = asyncio.Event()

    async def __call__(self, out: ScrapeOutput) -> None:
        self.items.append(out)
        self._changed.set()

    def of(self, tid: str) -> list[ScrapeOutput]:
        return [o for o in self.items if o.report.ctx.target == tid]

    async def wait(self, pred: Callable[[], bool], deadline: float = 10.0) -> None:
        async with asyncio.timeout(deadline):
            while not pred():
                self._changed.clear()
                await self._changed.wait()


class RecordingObserver(NullObserver):
    def __init__(self) -> None:
        self.reports: list[ScrapeReport] = []

    def scrape_finished(self, report: ScrapeReport) -> None:
        self.reports.append(report)


class Running:
    """Runs a scheduler in a task; ``close()`` stops it and returns once ``run`` has returned."""

    def __init__(self, sched: Scheduler, grace: float = 1.0) -> None:
        self.sched = sched
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(sched.run(self.stop, grace=grace))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


def aligned_clock(tid: str, interval: float, lead: float = 0.05) -> Callable[[], float]:
    """A monotonic clock shifted so that ``tid``'s first grid tick is ``lead`` seconds away."""
    phase = phase_offset(tid, interval)
    shift = (phase - lead - time.monotonic() % interval) % interval
    return lambda: time.monotonic() + shift


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(app_servers: AppServers, routes: dict[str, Handler]) -> str:
    app = web.Application()
    for path, h in routes.items():
        app.router.add_get(path, h)
    return await app_servers.start(app)


# -- pure parts ----------------------------------------------------------------------------------


def test_phase_offsets_are_stable_and_spread() -> None:
    interval = 15.0
    ids = [f"acct-{i % 7}/node/http://10.0.{i // 250}.{i % 250}:9100/metrics" for i in range(1000)]
    offsets = [phase_offset(t, interval) for t in ids]
    assert offsets == [phase_offset(t, interval) for t in ids]  # stable
    assert all(0.0 <= o < interval for o in offsets)
    buckets = Counter(int(o / interval * 10) for o in offsets)
    # 1,000 targets over 10 buckets: each gets roughly 100, none is empty or a crowd.
    assert len(buckets) == 10
    assert max(buckets.values()) < 150
    assert min(buckets.values()) > 50


@given(
    now=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    interval=st.floats(min_value=0.05, max_value=3600),
    frac=st.floats(min_value=0, max_value=0.999),
)
def test_first_tick_is_the_next_grid_point(now: float, interval: float, frac: float) -> None:
    phase = frac * interval
    tick = first_tick(now, interval, phase)
    assert now - 1e-6 <= tick < now + interval + 1e-6
    k = (tick - phase) / interval
    assert abs(k - round(k)) < 1e-6


def test_retry_fits_only_inside_the_interval_budget() -> None:
    assert retry_fits(now=10.0, delay=0.1, timeout=0.5, next_tick=11.0)
    assert retry_fits(now=10.0, delay=0.5, timeout=0.5, next_tick=11.0)
    assert not retry_fits(now=10.0, delay=0.6, timeout=0.5, next_tick=11.0)


def test_timeout_is_kept_below_interval() -> None:
    t = make_target("x", "http://127.0.0.1:1/", interval=1.0, timeout=5.0)
    assert effective_timeout(t) < t.interval
    assert effective_timeout(make_target("y", "http://127.0.0.1:1/", interval=1.0, timeout=0.3)) == 0.3


# -- with real servers ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_concurrency_bound_is_never_exceeded(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    in_flight = 0
    peak = 0
    total = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, peak, total
        in_flight += 1
        total += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.08)  # simulated exporter latency (workload, not synchronization)
        finally:
            in_flight -= 1
        return web.Response(text="ok")

    base = await serve(app_servers, {"/m": handler})
    targets = [make_target(f"t{i}", f"{base}/m?i={i}") for i in range(12)]
    outputs = Outputs()
    sched = Scheduler(targets, session, SCRAPERS, outputs, max_concurrency=3, observer=NullObserver())
    run = Running(sched)
    try:
        await outputs.wait(lambda: len(outputs.items) >= 40)
    finally:
        await run.close()
    assert peak <= 3
    assert peak == 3  # the bound was actually reached, so the test could have failed
    assert total >= 40
    assert sched.skipped_ticks > 0  # 12 x 80 ms of work per 200 ms does not fit in 3 slots


async def test_slow_target_does_not_delay_others(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    base = await serve(app_servers, {"/hang": hang, "/fast": fast})
    slow_t = make_target("slow", base + "/hang", interval=0.2, timeout=0.15)
    fast_t = make_target("fast", base + "/fast", interval=0.2, timeout=0.15)
    outputs = Outputs()
    sched = Scheduler(
        [slow_t, fast_t], session, SCRAPERS, outputs, max_concurrency=4, observer=NullObserver()
    )
    run = Running(sched)
    try:
        await outputs.wait(lambda: len(outputs.of("fast")) >= 5 and len(outputs.of("slow")) >= 2)
        fast_outs, slow = outputs.of("fast"), outputs.of("slow")  # before the hang is released
    finally:
        release.set()
        await run.close()
    assert all(o.report.status is ScrapeStatus.OK for o in fast_outs)
    assert all(o.report.error_reason == "timeout" for o in slow)
    assert "/hang" in slow[0].report.error


async def test_retry_after_503_succeeds_within_the_interval(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=503, text="warming up")
        return web.Response(text="ok")

    base = await serve(app_servers, {"/m": flaky})
    t = make_target("flaky", base + "/m", interval=2.0, timeout=0.3, retries=RetryPolicy(3, 0.01, 0.05))
    outputs = Outputs()
    observer = RecordingObserver()
    sched = Scheduler(
        [t],
        session,
        SCRAPERS,
        outputs,
        max_concurrency=2,
        observer=observer,
        clock=aligned_clock("flaky", 2.0),
    )
    run = Running(sched)
    try:
        await outputs.wait(lambda: len(outputs.items) >= 1)
    finally:
        await run.close()
    first = outputs.items[0]
    assert first.report.status is ScrapeStatus.OK
    assert calls == 2
    assert sched.stats["flaky"].retries == 1
    assert observer.reports[0].status is ScrapeStatus.OK  # one report per tick, not per attempt


async def test_permanent_error_is_not_retried(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    calls = 0

    async def missing(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=404)

    base = await serve(app_servers, {"/m": missing})
    t = make_target("gone", base + "/m", interval=2.0, timeout=0.3, retries=RetryPolicy(5, 0.01, 0.01))
    outputs = Outputs()
    sched = Scheduler(
        [t],
        session,
        SCRAPERS,
        outputs,
        max_concurrency=2,
        observer=NullObserver(),
        clock=aligned_clock("gone", 2.0),
    )
    run = Running(sched)
    try:
        await outputs.wait(lambda: len(outputs.items) >= 1)
    finally:
        await run.close()
    assert calls == 1
    assert outputs.items[0].report.error_reason == "http_status"
    assert sched.stats["gone"].failures == 1


async def test_graceful_stop_cancels_hanging_scrape_after_grace(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    started = asyncio.Event()
    disconnected = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        started.set()
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            disconnected.set()
            raise
        return web.Response()  # pragma: no cover

    base = await serve(app_servers, {"/m": hang})
    # A 20 s scrape timeout: run() can only return early by honouring the grace period.
    t = make_target("hang", base + "/m", interval=30.0, timeout=20.0)
    outputs = Outputs()
    sched = Scheduler(
        [t],
        session,
        SCRAPERS,
        outputs,
        max_concurrency=2,
        observer=NullObserver(),
        clock=aligned_clock("hang", 30.0),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop, grace=0.1))
    await asyncio.wait_for(started.wait(), 10)
    assert sched.in_flight() == 1
    stop.set()
    await asyncio.wait_for(task, 5)  # far below the 20 s scrape timeout
    await asyncio.wait_for(disconnected.wait(), 5)
    assert outputs.items == []


async def test_stop_waits_for_in_flight_scrape_within_grace(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(text="done")

    base = await serve(app_servers, {"/m": slow})
    t = make_target("slow", base + "/m", interval=30.0, timeout=20.0)
    outputs = Outputs()
    sched = Scheduler(
        [t],
        session,
        SCRAPERS,
        outputs,
        max_concurrency=2,
        observer=NullObserver(),
        clock=aligned_clock("slow", 30.0),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop, grace=10.0))
    await asyncio.wait_for(started.wait(), 10)
    stop.set()
    release.set()  # the in-flight scrape completes inside the grace period
    await asyncio.wait_for(task, 10)
    assert [o.report.status for o in outputs.items] == [ScrapeStatus.OK]


async def test_update_targets_reconciles(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    hits: Counter[str] = Counter()

    async def handler(request: web.Request) -> web.Response:
        hits[request.query["t"]] += 1
        return web.Response(text="ok")

    base = await serve(app_servers, {"/m": handler})
    a = make_target("a", base + "/m?t=a")
    b = make_target("b", base + "/m?t=b")
    c = make_target("c", base + "/m?t=c")
    outputs = Outputs()
    sched = Scheduler([a, b], session, SCRAPERS, outputs, max_concurrency=4, observer=NullObserver())
    run = Running(sched)
    try:
        await outputs.wait(lambda: len(outputs.of("a")) >= 1 and len(outputs.of("b")) >= 1)
        b_task = sched._runners["b"].task
        result = sched.update_targets([b, c])
        assert (result.added, result.removed, result.changed, result.unchanged) == (1, 1, 0, 1)
        assert sched._runners["b"].task is b_task  # unchanged target kept running
        assert "a" not in sched._runners
        a_count = len(outputs.of("a"))
        await outputs.wait(lambda: len(outputs.of("c")) >= 3)
        assert len(outputs.of("a")) <= a_count + 1  # at most the scrape that was in flight
        # A changed target (new timeout) restarts under the same id.
        b2 = make_target("b", base + "/m?t=b", timeout=0.1)
        result = sched.update_targets([b2, c])
        assert result.changed == 1
        assert sched._runners["b"].task is not b_task
        n = len(outputs.of("b"))
        await outputs.wait(lambda: len(outputs.of("b")) >= n + 2)
    finally:
        await run.close()
    assert {t.id for t in sched.targets} == {"b", "c"}


async def test_overrun_skips_missed_ticks_and_stays_on_grid(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    base = await serve(app_servers, {"/m": handler})
    interval = 0.2
    base_clock = aligned_clock("grid", interval)
    jump = [0.0]

    def clock() -> float:
        return base_clock() + jump[0]

    seen_at: list[float] = []

    async def on_output(out: ScrapeOutput) -> None:
        seen_at.append(clock())
        if len(seen_at) == 1:
            jump[0] += 3 * interval  # the first delivery "took" three intervals
        await outputs(out)

    outputs = Outputs()
    t = make_target("grid", base + "/m", interval=interval)
    sched = Scheduler(
        [t], session, SCRAPERS, on_output, max_concurrency=1, observer=NullObserver(), clock=clock
    )
    run = Running(sched)
    try:
        await outputs.wait(lambda: len(outputs.items) >= 2)
    finally:
        await run.close()
    assert sched.stats["grid"].skipped_ticks == 3
    phase = phase_offset("grid", interval)
    k = (seen_at[1] - phase) / interval  # the second scrape ran on a grid point (plus a little)
    assert k - int(k) < 0.5


async def test_crashing_scraper_and_failing_output_handler_do_not_stop_the_loop(
    session: aiohttp.ClientSession,
) -> None:
    delivered: list[ScrapeOutput] = []
    changed = asyncio.Event()

    async def on_output(out: ScrapeOutput) -> None:
        delivered.append(out)
        changed.set()
        if len(delivered) == 1:
            raise RuntimeError("sink exploded")

    t = make_target("boom", "http://127.0.0.1:1/", kind="crash")
    unknown = make_target("nokind", "http://127.0.0.1:1/", kind="does-not-exist")
    sched = Scheduler([t, unknown], session, SCRAPERS, on_output, max_concurrency=1, observer=NullObserver())
    run = Running(sched)
    try:
        async with asyncio.timeout(10):
            while len(delivered) < 2:
                changed.clear()
                await changed.wait()
    finally:
        await run.close()
    assert delivered[0].report.error_reason == "internal"
    assert "crashed" in delivered[0].report.error
    assert {o.report.ctx.target for o in delivered} == {"boom"}


# -- event-loop lag monitor ----------------------------------------------------------------------


class LagObserver(NullObserver):
    def __init__(self) -> None:
        self.lags: list[float] = []
        self.changed = asyncio.Event()

    def loop_lag(self, seconds: float) -> None:
        self.lags.append(seconds)
        self.changed.set()


async def wait_lag(obs: LagObserver, pred: Callable[[], bool], deadline: float = 10.0) -> None:
    async with asyncio.timeout(deadline):
        while not pred():
            obs.changed.clear()
            await obs.changed.wait()


def test_percentiles_and_max() -> None:
    mon = LoopLagMonitor(NullObserver(), interval=0.1, history=100)
    assert (mon.p99, mon.max, mon.last) == (0.0, 0.0, 0.0)
    for i in range(100):
        mon.record(i / 1000)
    mon.record(-1.0)  # clock noise never reports negative lag
    assert mon.last == 0.0
    assert mon.max == pytest.approx(0.099)
    assert mon.percentile(0.5) == pytest.approx(0.049)
    assert mon.p99 == pytest.approx(0.098)
    assert len(mon.samples) == 100  # bounded history


def test_rejects_bad_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        LoopLagMonitor(NullObserver(), interval=0)


async def test_blocked_loop_is_reported() -> None:
    obs = LagObserver()
    mon = LoopLagMonitor(obs, interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(mon.run(stop))
    try:
        await wait_lag(obs, lambda: len(obs.lags) >= 1)
        time.sleep(0.3)  # noqa: ASYNC251 - the fault under test: something blocks the event loop for 300 ms
        await wait_lag(obs, lambda: any(lag >= 0.2 for lag in obs.lags))
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert mon.max >= 0.2  # the timer cannot fire before the loop is free again
    assert task.done() and task.exception() is None


async def test_start_and_stop_task() -> None:
    obs = LagObserver()
    mon = LoopLagMonitor(obs, interval=0.02)
    task = mon.start()
    await wait_lag(obs, lambda: len(obs.lags) >= 2)
    await mon.stop()
    assert task.cancelled()
    await mon.stop()  # idempotent


# -- retry budget, reload before start, forget ---------------------------------------------------


class ForgetfulProbe(ProbeScraper):
    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def forget(self, target_id: str) -> None:
        self.forgotten.append(target_id)


async def test_no_retry_when_it_would_run_into_the_next_tick(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    interval = 1.0
    base_clock = aligned_clock("budget", interval)
    jump = [0.0]
    calls = 0

    async def unavailable(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        jump[0] += interval  # by the time the 503 arrives, the interval budget is spent
        return web.Response(status=503)

    base = await serve(app_servers, {"/m": unavailable})
    t = make_target(
        "budget", base + "/m", interval=interval, timeout=0.5, retries=RetryPolicy(5, 0.001, 0.001)
    )
    outputs = Outputs()
    sched = Scheduler(
        [t],
        session,
        SCRAPERS,
        outputs,
        max_concurrency=1,
        observer=NullObserver(),
        clock=lambda: base_clock() + jump[0],
    )
    run = Running(sched)
    try:
        await outputs.wait(lambda: len(outputs.items) >= 1)
    finally:
        await run.close()
    assert outputs.items[0].report.error.startswith("HTTP 503")
    assert sched.stats["budget"].retries == 0
    assert calls == 1


async def test_update_before_run_and_forget_on_removal(session: aiohttp.ClientSession) -> None:
    probe = ForgetfulProbe()
    scrapers = {"probe": probe}
    a = make_target("a", "http://127.0.0.1:1/", interval=60.0)
    b = make_target("b", "http://127.0.0.1:1/", interval=60.0)
    sched = Scheduler([a], session, scrapers, Outputs(), max_concurrency=1, observer=NullObserver())
    res = sched.update_targets([b, make_target("a", "http://127.0.0.1:1/", interval=30.0)])
    assert (res.added, res.changed) == (1, 1)
    assert sched._runners == {}  # nothing starts before run()
    sched.update_targets([b])
    assert probe.forgotten == ["a"]
    run = Running(sched, grace=0.1)
    await asyncio.sleep(0)  # let run() start its runners
    assert set(sched._runners) == {"b"}
    await run.close()
    assert sched._runners == {}


async def test_timeout_not_below_interval_is_clamped_for_the_scrape(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers["X-Prometheus-Scrape-Timeout-Seconds"])
        return web.Response(text="ok")

    base = await serve(app_servers, {"/m": handler})
    t = make_target("clamp", base + "/m", interval=1.0, timeout=5.0)
    outputs = Outputs()
    sched = Scheduler(
        [t],
        session,
        SCRAPERS,
        outputs,
        max_concurrency=1,
        observer=NullObserver(),
        clock=aligned_clock("clamp", 1.0),
    )
    run = Running(sched)
    try:
        await outputs.wait(lambda: len(outputs.items) >= 1)
    finally:
        await run.close()
    assert float(seen[0]) < 1.0


async def test_stop_during_retry_backoff_returns_promptly(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    hit = asyncio.Event()

    async def unavailable(request: web.Request) -> web.Response:
        hit.set()
        return web.Response(status=503)

    base = await serve(app_servers, {"/m": unavailable})
    # Long backoff that still fits the 60 s interval: only stop can end the sleep early.
    t = make_target("backoff", base + "/m", interval=60.0, timeout=0.5, retries=RetryPolicy(3, 20.0, 20.0))
    outputs = Outputs()
    sched = Scheduler(
        [t],
        session,
        SCRAPERS,
        outputs,
        max_concurrency=1,
        observer=NullObserver(),
        clock=aligned_clock("backoff", 60.0),
    )
    run = Running(sched, grace=5.0)
    await asyncio.wait_for(hit.wait(), 10)
    await run.close()  # would take up to 20 s if the backoff sleep ignored stop
    assert len(outputs.items) <= 1
