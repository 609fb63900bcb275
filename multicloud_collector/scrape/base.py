"""The scraper protocol, the ``Target`` a scraper is pointed at, and helpers shared by scrapers.

Scrapers never raise for target problems: a broken target becomes a ``ScrapeOutput`` whose report
says ``error`` with a reason, so one bad exporter cannot take down the loop or its neighbours.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import aiohttp

from multicloud_collector.model import (
    SampleBlock,
    ScrapeLimits,
    ScrapeOutput,
    ScrapeReport,
    ScrapeStatus,
    Series,
    TargetContext,
)
from multicloud_collector.parse.cache import SeriesFilter
from multicloud_collector.scrape.http import TRANSIENT_REASONS, FetchError
from multicloud_collector.secrets import Secret, redact, safe_url


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of transient failures inside one interval (see ``scheduler``)."""

    max_tries: int = 3
    base_delay: float = 0.5
    max_delay: float = 5.0


@dataclass(frozen=True, slots=True)
class PromQuery:
    name: str
    expr: str


HeaderValue = str | Secret


@dataclass(frozen=True, slots=True)
class Target:
    """One thing scraped on an interval. Frozen and hashable so reloads can diff old and new."""

    ctx: TargetContext
    url: str
    interval: float
    timeout: float
    limits: ScrapeLimits = field(default_factory=ScrapeLimits)
    headers: tuple[tuple[str, HeaderValue], ...] = ()
    extra_labels: tuple[tuple[str, str], ...] = ()
    queries: tuple[PromQuery, ...] = ()
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    # Plugins' ``filter_series`` decision for this target; consulted once per new series by the
    # parser cache. Not part of equality: a reload does not restart a target for it.
    series_filter: SeriesFilter | None = field(default=None, compare=False, hash=False)

    @property
    def id(self) -> str:
        return self.ctx.target

    @property
    def shown_url(self) -> str:
        return safe_url(self.url)

    def request_headers(self) -> dict[str, str]:
        """Headers with secrets revealed: only ever handed to aiohttp, never logged."""
        return {k: v.reveal() if isinstance(v, Secret) else v for k, v in self.headers}


@runtime_checkable
class Scraper(Protocol):
    kind: str

    async def scrape(self, target: Target, session: aiohttp.ClientSession) -> ScrapeOutput: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ok_report(
    target: Target, ts_ms: int, duration_s: float, *, samples: int, nbytes: int, dropped: int = 0
) -> ScrapeReport:
    return ScrapeReport(
        ts_ms=ts_ms,
        ctx=target.ctx,
        url=target.shown_url,
        status=ScrapeStatus.OK,
        duration_ms=duration_s * 1000.0,
        samples=samples,
        bytes=nbytes,
        dropped=dropped,
    )


def error_report(
    target: Target, ts_ms: int, duration_s: float, reason: str, message: str, *, nbytes: int = 0
) -> ScrapeReport:
    """An error report; the message always names the target (by its redacted URL)."""
    shown = target.shown_url
    if shown not in message:
        message = f"{message} ({target.ctx.kind} target {shown})"
    return ScrapeReport(
        ts_ms=ts_ms,
        ctx=target.ctx,
        url=shown,
        status=ScrapeStatus.ERROR,
        duration_ms=duration_s * 1000.0,
        bytes=nbytes,
        error=redact(message),
        error_reason=reason,
    )


def fetch_error_report(target: Target, ts_ms: int, duration_s: float, exc: FetchError) -> ScrapeReport:
    return error_report(target, ts_ms, duration_s, exc.reason, exc.message)


_HTTP_5XX = re.compile(r"\bHTTP 5\d\d\b")


def is_transient(report: ScrapeReport) -> bool:
    """Whether a failed scrape is worth retrying in the same interval (network trouble or a 5xx).

    Error messages for HTTP failures start with ``HTTP <code>`` (see ``scrape.http``), which is
    how the code survives the trip through the plain ``ScrapeReport``.
    """
    if report.status is not ScrapeStatus.ERROR:
        return False
    if report.error_reason in TRANSIENT_REASONS:
        return True
    return report.error_reason == "http_status" and _HTTP_5XX.search(report.error) is not None


# Prometheus-style report series appended to every exposition/DCGM block.
SYNTHETIC_METRICS = ("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_body_bytes")


class SyntheticSeries:
    """Caches the ``Series`` of the synthetic report metrics per target (ids are hashes)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], Series] = {}

    def get(self, target: Target, metric: str) -> Series:
        key = (target.id, metric, target.extra_labels)
        s = self._cache.get(key)
        if s is None:
            from multicloud_collector.normalize.series import series_id

            labels = tuple(sorted(target.extra_labels))
            s = Series(metric=metric, labels=labels, series_id=series_id(target.id, metric, labels))
            self._cache[key] = s
        return s

    def forget(self, target_id: str) -> None:
        for key in [k for k in self._cache if k[0] == target_id]:
            del self._cache[key]

    def append(
        self,
        block: SampleBlock,
        target: Target,
        *,
        up: bool,
        duration_s: float,
        samples: int | None = None,
        nbytes: int | None = None,
    ) -> None:
        """Add ``up`` and ``scrape_duration_seconds`` (and, on success, samples and body bytes)."""
        if len(block.flags) != len(block.values):
            block.flags = [0] * len(block.values)
        values: list[tuple[str, float]] = [
            ("up", 1.0 if up else 0.0),
            ("scrape_duration_seconds", duration_s),
        ]
        if samples is not None:
            values.append(("scrape_samples_scraped", float(samples)))
        if nbytes is not None:
            values.append(("scrape_body_bytes", float(nbytes)))
        for metric, value in values:
            block.series.append(self.get(target, metric))
            block.values.append(value)
            block.flags.append(0)


def failure_output(
    target: Target, synth: SyntheticSeries, ts_ms: int, duration_s: float, report: ScrapeReport
) -> ScrapeOutput:
    """A failed scrape still yields ``up=0`` and its duration (Prometheus semantics)."""
    block = SampleBlock(ctx=target.ctx, ts_ms=ts_ms)
    synth.append(block, target, up=False, duration_s=duration_s)
    return ScrapeOutput(report=report, blocks=[block])


def headers_of(mapping: Mapping[str, HeaderValue] | None) -> tuple[tuple[str, HeaderValue], ...]:
    return tuple(sorted((mapping or {}).items()))
