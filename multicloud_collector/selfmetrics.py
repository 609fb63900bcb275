"""The collector's own ``mcc_*`` metrics, served on ``/metrics``.

``SelfMetrics`` implements ``observe.Observer`` on a private CollectorRegistry (so tests and
several daemons in one process never collide). Label values are bounded on purpose: kinds, tables
and short reason codes only, never target URLs or ids, and every label is capped in how many
distinct values it may take, so a misbehaving caller cannot blow up the series count. Per-target
detail lives in ``last_reports`` (for the JSON API), not in metric labels.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from multicloud_collector import __version__
from multicloud_collector.model import ScrapeReport, ScrapeStatus
from multicloud_collector.secrets import redact

LAG_WINDOW_S = 60.0
MAX_LABEL_VALUES = 64  # distinct values per label; further ones are folded into "other"
OTHER = "other"
# Our names are all legacy-valid, so the classic format is exact and every Prometheus (2.x too) reads it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LABEL_RE = re.compile(r"[^a-z0-9_]+")


class _BoundedValues:
    """Sanitizes label values and caps their number (cardinality guard)."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, value: str) -> str:
        v = _LABEL_RE.sub("_", redact(str(value)).lower()).strip("_")[:48] or "unknown"
        if v in self._seen:
            return v
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(v)
        return v


class SelfMetrics:
    """Observer that turns pipeline events into prometheus-client metrics."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.last_reports: dict[str, ScrapeReport] = {}
        self._clock = clock
        self._lags: deque[tuple[float, float]] = deque()
        self._targets_configured: int | None = None
        self._kind = _BoundedValues()
        self._reason = _BoundedValues()
        self._table = _BoundedValues()
        r = self.registry
        kind, table, reason = ["kind"], ["table"], ["reason"]
        self.scrapes = Counter("mcc_scrapes_total", "Scrapes finished.", ["kind", "status"], registry=r)
        self.scrape_failures = Counter(
            "mcc_scrape_failures_total", "Failed scrapes by reason.", reason, registry=r
        )
        self.scrape_samples = Counter("mcc_scrape_samples_total", "Samples scraped.", kind, registry=r)
        self.scrape_bytes = Counter("mcc_scrape_bytes_total", "Response bytes scraped.", kind, registry=r)
        self.scrape_duration = Histogram(
            "mcc_scrape_duration_seconds", "Scrape duration.", kind, buckets=_DURATION_BUCKETS, registry=r
        )
        self.targets_up = Gauge("mcc_targets_up", "Targets whose last scrape succeeded.", registry=r)
        self.targets_up.set_function(self._count_up)
        self.targets = Gauge("mcc_targets", "Targets configured (or reported, until set).", registry=r)
        self.targets.set_function(self._count_targets)
        self.samples_invalid_total = Counter(
            "mcc_samples_invalid_total", "Values dropped or flagged by validation.", reason, registry=r
        )
        self.loop_lag_seconds = Histogram(
            "mcc_event_loop_lag_seconds", "How late a loop timer fired.", buckets=_LAG_BUCKETS, registry=r
        )
        self.loop_lag_max_seconds = Gauge(
            "mcc_event_loop_lag_max_seconds", "Maximum event-loop lag over the last 60 s.", registry=r
        )
        self.loop_lag_max_seconds.set_function(self.loop_lag_max)
        self.sink_rows = Counter("mcc_sink_rows_total", "Rows written to the store.", table, registry=r)
        self.sink_bytes = Counter("mcc_sink_bytes_total", "Encoded bytes written.", table, registry=r)
        self.sink_insert_duration = Histogram(
            "mcc_sink_insert_duration_seconds", "One insert.", buckets=_DURATION_BUCKETS, registry=r
        )
        self.sink_errors = Counter(
            "mcc_sink_errors_total", "Failed insert attempts.", ["table", "reason"], registry=r
        )
        self.sink_rows_dropped = Counter(
            "mcc_sink_rows_dropped_total", "Rows never stored.", ["table", "reason"], registry=r
        )
        self.sink_queue_rows = Gauge("mcc_sink_queue_rows", "Rows in the batcher.", table, registry=r)
        self.sink_queue_bytes = Gauge("mcc_sink_queue_bytes", "Bytes in the batcher.", table, registry=r)
        self._code = _BoundedValues()
        self._spool_stats: Callable[[], Any] | None = None
        self.sink_insert_attempts = Counter(
            "mcc_sink_insert_attempts_total",
            "HTTP inserts by outcome (ok, retry, permanent, split) and exception code.",
            ["table", "outcome", "code"],
            registry=r,
        )
        self.sink_rows_quarantined = Counter(
            "mcc_sink_rows_quarantined_total", "Rows rejected as data errors, kept in the quarantine file.",
            table, registry=r,
        )
        self.sink_alerts = Gauge(
            "mcc_sink_alert", "1 while a condition needs an operator (permanent_error, spool_unavailable).",
            ["alert"], registry=r,
        )
        self.spool_events = Counter(
            "mcc_spool_events_total",
            "Spool events: spooled_rows, replayed_rows (counts of rows), torn_record, corrupt_record, "
            "write_error, blocked (counts of events).",
            ["event"], registry=r,
        )
        for name, doc, key in (
            ("mcc_spool_bytes", "Bytes in the disk spool.", "bytes"),
            ("mcc_spool_max_bytes", "Configured spool bound.", "max_bytes"),
            ("mcc_spool_segments", "Segment files in the spool.", "segments"),
            ("mcc_spool_batches", "Undelivered batches in the spool.", "batches"),
            ("mcc_spool_rows", "Undelivered rows in the spool.", "rows"),
        ):
            Gauge(name, doc, registry=r).set_function(self._spool_reader(key))
        Gauge(
            "mcc_spool_oldest_age_seconds", "Age of the oldest undelivered batch (0 when empty).", registry=r
        ).set_function(self._spool_oldest_age)
        self.build_info = Gauge("mcc_build_info", "Build information (always 1).", ["version"], registry=r)
        self.build_info.labels(version=__version__).set(1)

    # ---- Observer ----------------------------------------------------------------------------

    def scrape_finished(self, report: ScrapeReport) -> None:
        kind = self._kind(report.ctx.kind)
        self.scrapes.labels(kind=kind, status=report.status.value).inc()
        if report.status is not ScrapeStatus.OK:
            self.scrape_failures.labels(reason=self._reason(report.error_reason or "unknown")).inc()
        self.scrape_samples.labels(kind=kind).inc(max(report.samples, 0))
        self.scrape_bytes.labels(kind=kind).inc(max(report.bytes, 0))
        self.scrape_duration.labels(kind=kind).observe(max(report.duration_ms, 0.0) / 1000.0)
        self.last_reports[report.ctx.target] = report

    def loop_lag(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.loop_lag_seconds.observe(seconds)
        now = self._clock()
        lags = self._lags
        # Keep a monotonic deque: an older, smaller lag can never be the window maximum again.
        while lags and lags[-1][1] <= seconds:
            lags.pop()
        lags.append((now, seconds))
        self._expire(now)

    def samples_invalid(self, reason: str, count: int) -> None:
        if count > 0:
            self.samples_invalid_total.labels(reason=self._reason(reason)).inc(count)

    def rows_written(self, table: str, rows: int, nbytes: int, seconds: float) -> None:
        t = self._table(table)
        self.sink_rows.labels(table=t).inc(max(rows, 0))
        self.sink_bytes.labels(table=t).inc(max(nbytes, 0))
        self.sink_insert_duration.observe(max(seconds, 0.0))

    def sink_error(self, table: str, reason: str) -> None:
        self.sink_errors.labels(table=self._table(table), reason=self._reason(reason)).inc()

    def rows_dropped(self, table: str, reason: str, rows: int) -> None:
        if rows > 0:
            self.sink_rows_dropped.labels(table=self._table(table), reason=self._reason(reason)).inc(rows)

    def queue_depth(self, table: str, rows: int, nbytes: int) -> None:
        t = self._table(table)
        self.sink_queue_rows.labels(table=t).set(rows)
        self.sink_queue_bytes.labels(table=t).set(nbytes)

    # ---- ClickHouse sink and spool (sink.events.DeliveryObserver) ----------------------------

    def insert_attempt(self, table: str, outcome: str, code: str) -> None:
        self.sink_insert_attempts.labels(
            table=self._table(table), outcome=self._reason(outcome), code=self._code(code)
        ).inc()

    def spool_event(self, event: str, count: int = 1) -> None:
        if count > 0:
            self.spool_events.labels(event=self._reason(event)).inc(count)

    def rows_quarantined(self, table: str, rows: int) -> None:
        if rows > 0:
            self.sink_rows_quarantined.labels(table=self._table(table)).inc(rows)

    def sink_alert(self, name: str, active: bool) -> None:
        self.sink_alerts.labels(alert=self._reason(name)).set(1 if active else 0)

    def watch_spool(self, stats: Callable[[], Any]) -> None:
        """Serve the spool gauges from ``stats()`` (an object with bytes, max_bytes, segments, ...)."""
        self._spool_stats = stats

    def _spool_reader(self, key: str) -> Callable[[], float]:
        return lambda: self._spool_value(key)

    def _spool_value(self, key: str) -> float:
        return float(getattr(self._spool_stats(), key)) if self._spool_stats is not None else 0.0

    def _spool_oldest_age(self) -> float:
        oldest = getattr(self._spool_stats(), "oldest_created", None) if self._spool_stats else None
        return max(time.time() - oldest, 0.0) if oldest else 0.0

    # ---- targets -----------------------------------------------------------------------------

    def set_targets(self, count: int) -> None:
        """Number of configured targets (the daemon calls this after each (re)load)."""
        self._targets_configured = max(count, 0)

    def forget_target(self, target_id: str) -> None:
        """A target left the config: drop its last report so it stops counting as up/down."""
        self.last_reports.pop(target_id, None)

    def retain_targets(self, target_ids: set[str]) -> None:
        """Keep only the reports of these targets (after a reload)."""
        for tid in [t for t in self.last_reports if t not in target_ids]:
            del self.last_reports[tid]

    def targets_status(self) -> tuple[int, int]:
        """(up, down) among targets with a last report."""
        up = self._count_up()
        return int(up), len(self.last_reports) - int(up)

    def _count_up(self) -> float:
        return float(sum(1 for r in self.last_reports.values() if r.status is ScrapeStatus.OK))

    def _count_targets(self) -> float:
        if self._targets_configured is not None:
            return float(self._targets_configured)
        return float(len(self.last_reports))

    # ---- loop lag ----------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        lags = self._lags
        while lags and lags[0][0] < now - LAG_WINDOW_S:
            lags.popleft()

    def loop_lag_max(self) -> float:
        """Largest loop lag seen in the last 60 s (0 when none)."""
        self._expire(self._clock())
        return self._lags[0][1] if self._lags else 0.0

    # ---- exposition --------------------------------------------------------------------------

    def render(self) -> bytes:
        """Prometheus text exposition (format 0.0.4) of every ``mcc_*`` metric."""
        return generate_latest(self.registry)
