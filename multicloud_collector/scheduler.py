"""The scrape loop: one task per target on a fixed grid, bounded concurrency, reload-safe.

Why these rules (see docs/architecture.md and research/reliability.md §3.3):
- a stable per-target phase offset spreads 1,000 targets over the interval instead of firing them
  together, and survives restarts because it is derived from the target id;
- ticks sit on a fixed grid (no drift); an overrun skips the missed ticks and counts them, so two
  scrapes of one target never overlap;
- retries only for transient failures and only while the retry still ends before the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import aiohttp
import backoff
import structlog

from multicloud_collector.collect import scrape_one, stable_hash
from multicloud_collector.model import ScrapeOutput
from multicloud_collector.observe import Observer
from multicloud_collector.scrape.base import Scraper, Target, is_transient

log = structlog.get_logger(__name__)

# A scrape's timeout is kept at most this fraction of its interval.
MAX_TIMEOUT_FRACTION = 0.9
_PHASE_RESOLUTION = 1_000_000  # microseconds


def phase_offset(target_id: str, interval: float) -> float:
    """Stable offset in [0, interval): hash(target id) mod interval, at microsecond resolution."""
    steps = max(1, round(interval * _PHASE_RESOLUTION))
    return (stable_hash(target_id) % steps) / _PHASE_RESOLUTION


def first_tick(now: float, interval: float, phase: float) -> float:
    """The first grid point ``k * interval + phase`` at or after ``now``."""
    tick = math.floor(now / interval) * interval + phase
    return tick if tick >= now else tick + interval


def retry_fits(now: float, delay: float, timeout: float, next_tick: float) -> bool:
    """A retry may start only if its backoff sleep plus a full timeout ends by the next tick."""
    return now + delay + timeout <= next_tick


def effective_timeout(target: Target) -> float:
    return min(target.timeout, target.interval * MAX_TIMEOUT_FRACTION)


@dataclass(slots=True)
class TargetStats:
    scrapes: int = 0
    failures: int = 0
    retries: int = 0
    skipped_ticks: int = 0


@dataclass(slots=True)
class _Runner:
    target: Target
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None
    in_flight: bool = False


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    added: int
    removed: int
    changed: int
    unchanged: int


OnOutput = Callable[[ScrapeOutput], Awaitable[None]]


class Scheduler:
    def __init__(
        self,
        targets: Iterable[Target],
        session: aiohttp.ClientSession,
        scrapers: Mapping[str, Scraper],
        on_output: OnOutput,
        *,
        max_concurrency: int,
        observer: Observer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._targets: dict[str, Target] = {}
        for t in targets:
            self._targets.setdefault(t.id, t)
        self._session = session
        self._scrapers = scrapers
        self._on_output = on_output
        self._sem = asyncio.Semaphore(max(1, max_concurrency))
        self._observer = observer
        self._clock = clock
        self._runners: dict[str, _Runner] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._running = False
        self._stopping = False
        self.stats: dict[str, TargetStats] = {}

    # -- public ------------------------------------------------------------------------------------
    @property
    def targets(self) -> list[Target]:
        return list(self._targets.values())

    @property
    def skipped_ticks(self) -> int:
        return sum(s.skipped_ticks for s in self.stats.values())

    def in_flight(self) -> int:
        return sum(1 for r in self._runners.values() if r.in_flight)

    async def run(self, stop: asyncio.Event, grace: float) -> None:
        """Scrape until ``stop`` is set; then let in-flight scrapes finish for up to ``grace`` seconds."""
        self._running = True
        for t in self._targets.values():
            self._start(t)
        log.info("scheduler_started", targets=len(self._runners))
        try:
            await stop.wait()
        finally:
            await self._shutdown(grace)

    def update_targets(self, targets: Iterable[Target]) -> ReconcileResult:
        """Reconcile on reload: start new targets, stop removed ones, restart changed ones.

        A changed target's new runner waits for the old one to finish so scrapes never overlap.
        """
        new: dict[str, Target] = {}
        for t in targets:
            new.setdefault(t.id, t)
        added = removed = changed = unchanged = 0
        for tid, old in list(self._targets.items()):
            if tid not in new:
                removed += 1
                self._retire(tid)
                self._forget(tid)
            elif new[tid] != old:
                changed += 1
        for tid, t in new.items():
            old_t = self._targets.get(tid)
            if old_t is None:
                added += 1
                if self._running and not self._stopping:
                    self._start(t)
            elif old_t != t:
                prev = self._retire(tid)
                if self._running and not self._stopping:
                    self._start(t, predecessor=prev)
            else:
                unchanged += 1
        self._targets = new
        result = ReconcileResult(added, removed, changed, unchanged)
        log.info("targets_reconciled", added=added, removed=removed, changed=changed, unchanged=unchanged)
        return result

    # -- internals ---------------------------------------------------------------------------------
    def _start(self, target: Target, predecessor: asyncio.Task[None] | None = None) -> None:
        if target.ctx.kind not in self._scrapers:
            log.error("unknown_scrape_kind", target=target.id, kind=target.ctx.kind)
            return
        runner = _Runner(target=target, stop=asyncio.Event())
        self.stats.setdefault(target.id, TargetStats())
        runner.task = asyncio.create_task(self._loop(runner, predecessor), name=f"scrape:{target.id}")
        self._runners[target.id] = runner

    def _retire(self, tid: str) -> asyncio.Task[None] | None:
        runner = self._runners.pop(tid, None)
        if runner is None or runner.task is None:
            return None
        runner.stop.set()
        self._retiring.add(runner.task)
        runner.task.add_done_callback(self._retiring.discard)
        return runner.task

    def _forget(self, tid: str) -> None:
        self.stats.pop(tid, None)
        for scraper in self._scrapers.values():
            forget = getattr(scraper, "forget", None)
            if callable(forget):
                forget(tid)

    async def _shutdown(self, grace: float) -> None:
        self._stopping = True
        for r in self._runners.values():
            r.stop.set()
        tasks = [r.task for r in self._runners.values() if r.task is not None] + list(self._retiring)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, grace))
            if pending:
                log.warning("scrapes_cancelled_at_shutdown", count=len(pending))
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        self._runners.clear()
        self._running = False
        log.info("scheduler_stopped")

    async def _sleep_until(self, deadline: float, stop: asyncio.Event) -> bool:
        """Wait until ``deadline`` (on ``clock``); True if ``stop`` was set first."""
        delay = deadline - self._clock()
        if stop.is_set():
            return True
        if delay <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        return stop.is_set()

    async def _loop(self, runner: _Runner, predecessor: asyncio.Task[None] | None) -> None:
        target = runner.target
        if predecessor is not None and not predecessor.done():
            await asyncio.wait([predecessor])
        interval = target.interval
        tick = first_tick(self._clock(), interval, phase_offset(target.id, interval))
        stats = self.stats.setdefault(target.id, TargetStats())
        while True:
            if await self._sleep_until(tick, runner.stop):
                return
            next_tick = tick + interval
            output = await self._scrape_with_retries(runner, next_tick, stats)
            self._observer.scrape_finished(output.report)
            for reason, n in output.invalid.items():
                self._observer.samples_invalid(reason, n)
            try:
                await self._on_output(output)
            except Exception:
                log.exception("output_handler_failed", target=target.id)
            now = self._clock()
            if now >= next_tick:
                missed = math.floor((now - next_tick) / interval) + 1
                next_tick += missed * interval
                stats.skipped_ticks += missed
                log.warning("scrape_ticks_skipped", target=target.id, skipped=missed)
            tick = next_tick

    async def _attempt(self, runner: _Runner) -> ScrapeOutput:
        target = runner.target
        timeout = effective_timeout(target)
        scrape_target = target
        if timeout != target.timeout:
            scrape_target = replace(target, timeout=timeout)
        async with self._sem:
            runner.in_flight = True
            try:
                return await scrape_one(scrape_target, self._session, self._scrapers)
            finally:
                runner.in_flight = False

    async def _scrape_with_retries(
        self, runner: _Runner, next_tick: float, stats: TargetStats
    ) -> ScrapeOutput:
        """One scrape plus retries of transient failures that still end before ``next_tick``."""
        target = runner.target
        policy = target.retries
        waits = backoff.expo(factor=policy.base_delay, max_value=policy.max_delay)
        next(waits)  # prime the generator (backoff's protocol)
        tries = 0
        while True:
            output = await self._attempt(runner)
            tries += 1
            stats.scrapes += 1
            if not is_transient(output.report) or tries >= max(1, policy.max_tries) or runner.stop.is_set():
                break
            delay = backoff.full_jitter(next(waits))
            if not retry_fits(self._clock(), delay, effective_timeout(target), next_tick):
                break  # a retry would run into the next scrape: give up on this tick
            stats.retries += 1
            log.info(
                "scrape_retry",
                target=target.id,
                attempt=tries,
                reason=output.report.error_reason,
                delay=delay,
            )
            if await self._sleep_until(self._clock() + delay, runner.stop):
                break
        if output.report.error:
            stats.failures += 1
        return output
