"""Uptime a collector has seen itself, for providers whose API tells neither cost nor start times.

Each inventory call is an observation; the time between two consecutive observations that both
saw an instance running counts as uptime, clipped to the current billing period. Lambda and
Paperspace use it (their APIs have no billing endpoint and no reliable start time).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


class ObservedUptime:
    """Running seconds per instance, accumulated between consecutive observations in one period."""

    def __init__(self) -> None:
        self._last_seen: dict[str, datetime] = {}
        self._seconds: dict[str, float] = {}
        self._period: datetime | None = None

    def observe(self, running: Iterable[str], at: datetime, period_start: datetime) -> None:
        if self._period != period_start:
            self._period = period_start
            self._seconds = {}
        seen: dict[str, datetime] = {}
        for instance_id in running:
            previous = self._last_seen.get(instance_id)
            if previous is not None:
                start = max(previous, period_start)
                if at > start:
                    self._seconds[instance_id] = (
                        self._seconds.get(instance_id, 0.0) + (at - start).total_seconds()
                    )
            seen[instance_id] = at
        self._last_seen = seen

    def seconds(self) -> dict[str, float]:
        return dict(self._seconds)
