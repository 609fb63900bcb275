"""Event-loop lag monitor: how late a timer fires tells whether something is blocking the loop.

A blocked loop delays every scrape and the systemd watchdog; the lag is reported to the
``Observer`` and the recent values are kept so health checks can read p99 and max.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque

from multicloud_collector.observe import Observer


class LoopLagMonitor:
    def __init__(self, observer: Observer, interval: float = 0.25, history: int = 1200) -> None:
        if interval <= 0:
            raise ValueError("LoopLagMonitor interval must be > 0")
        self.observer = observer
        self.interval = interval
        self._recent: deque[float] = deque(maxlen=history)
        self._task: asyncio.Task[None] | None = None

    @property
    def samples(self) -> list[float]:
        return list(self._recent)

    @property
    def last(self) -> float:
        return self._recent[-1] if self._recent else 0.0

    @property
    def max(self) -> float:
        return max(self._recent, default=0.0)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the recent lags (0.0 before the first measurement)."""
        if not self._recent:
            return 0.0
        ordered = sorted(self._recent)
        rank = max(1, math.ceil(q * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    def record(self, lag: float) -> None:
        lag = max(0.0, lag)
        self._recent.append(lag)
        self.observer.loop_lag(lag)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Measure until ``stop`` is set (or the task is cancelled)."""
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        while not stop.is_set():
            start = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                return
            self.record(loop.time() - start - self.interval)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="loop-lag-monitor")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
