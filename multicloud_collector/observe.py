"""The narrow interface through which pipeline stages report what happened.

Stages (scheduler, scrapers, batcher, sinks) call an ``Observer``; ``selfmetrics.SelfMetrics``
implements it with prometheus-client. Keeping it a Protocol lets the core stay free of metric
libraries and lets tests record events with a tiny fake.
"""

from __future__ import annotations

from typing import Protocol

from multicloud_collector.model import ScrapeReport


class Observer(Protocol):
    def scrape_finished(self, report: ScrapeReport) -> None:
        """One scrape of one target ended (ok or error)."""

    def loop_lag(self, seconds: float) -> None:
        """Measured event-loop lag (how late a timer fired)."""

    def samples_invalid(self, reason: str, count: int) -> None:
        """Values dropped or flagged by validation (reason: nan, inf, negative, out_of_range, sentinel...)."""

    def rows_written(self, table: str, rows: int, nbytes: int, seconds: float) -> None:
        """A batch reached the store."""

    def sink_error(self, table: str, reason: str) -> None:
        """An insert attempt failed (reason: exception code or short class name)."""

    def rows_dropped(self, table: str, reason: str, rows: int) -> None:
        """Rows that will never reach the store (buffer full, permanent error...)."""

    def queue_depth(self, table: str, rows: int, nbytes: int) -> None:
        """Rows/bytes waiting in the batcher for a table."""


class NullObserver:
    """Observer that ignores everything (for CLI one-shots and tests)."""

    def scrape_finished(self, report: ScrapeReport) -> None:
        pass

    def loop_lag(self, seconds: float) -> None:
        pass

    def samples_invalid(self, reason: str, count: int) -> None:
        pass

    def rows_written(self, table: str, rows: int, nbytes: int, seconds: float) -> None:
        pass

    def sink_error(self, table: str, reason: str) -> None:
        pass

    def rows_dropped(self, table: str, reason: str, rows: int) -> None:
        pass

    def queue_depth(self, table: str, rows: int, nbytes: int) -> None:
        pass
