"""SelfMetrics: every Observer event lands in the right mcc_* series, with bounded, secret-free labels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from multicloud_collector import __version__
from multicloud_collector.model import ScrapeReport, ScrapeStatus, TargetContext
from multicloud_collector.observe import Observer
from multicloud_collector.secrets import Secret
from multicloud_collector.selfmetrics import MAX_LABEL_VALUES, OTHER, SelfMetrics, _BoundedValues


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def report(
    target: str = "acct/node/1",
    kind: str = "node",
    status: ScrapeStatus = ScrapeStatus.OK,
    *,
    samples: int = 10,
    nbytes: int = 100,
    duration_ms: float = 250.0,
    reason: str = "",
    url: str = "http://127.0.0.1:9100/metrics",
) -> ScrapeReport:
    ctx = TargetContext("cust", "prov", "acct", target, kind, "exposition")
    return ScrapeReport(
        ts_ms=1_700_000_000_000,
        ctx=ctx,
        url=url,
        status=status,
        duration_ms=duration_ms,
        samples=samples,
        bytes=nbytes,
        error="boom" if status is ScrapeStatus.ERROR else "",
        error_reason=reason,
    )


def values(m: SelfMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_implements_observer() -> None:
    obs: Observer = SelfMetrics()
    assert obs is not None


def test_scrape_finished_counts_by_kind_and_status() -> None:
    m = SelfMetrics()
    m.scrape_finished(report("t1"))
    m.scrape_finished(report("t2", kind="dcgm", samples=5, nbytes=50, duration_ms=1500))
    m.scrape_finished(report("t3", status=ScrapeStatus.ERROR, samples=0, nbytes=0, reason="timeout"))
    m.scrape_finished(report("t4", status=ScrapeStatus.ERROR, samples=0, nbytes=0, reason=""))
    v = values(m)
    assert v[("mcc_scrapes_total", (("kind", "node"), ("status", "ok")))] == 1
    assert v[("mcc_scrapes_total", (("kind", "node"), ("status", "error")))] == 2
    assert v[("mcc_scrapes_total", (("kind", "dcgm"), ("status", "ok")))] == 1
    assert v[("mcc_scrape_failures_total", (("reason", "timeout"),))] == 1
    assert v[("mcc_scrape_failures_total", (("reason", "unknown"),))] == 1
    assert v[("mcc_scrape_samples_total", (("kind", "node"),))] == 10
    assert v[("mcc_scrape_bytes_total", (("kind", "dcgm"),))] == 50
    assert v[("mcc_scrape_duration_seconds_count", (("kind", "node"),))] == 3
    assert v[("mcc_scrape_duration_seconds_sum", (("kind", "dcgm"),))] == 1.5
    assert v[("mcc_scrape_duration_seconds_bucket", (("kind", "dcgm"), ("le", "1.0")))] == 0
    assert v[("mcc_scrape_duration_seconds_bucket", (("kind", "dcgm"), ("le", "2.5")))] == 1
    assert v[("mcc_targets_up", ())] == 2
    assert v[("mcc_targets", ())] == 4
    assert v[("mcc_build_info", (("version", __version__),))] == 1
    assert set(m.last_reports) == {"t1", "t2", "t3", "t4"}
    assert m.targets_status() == (2, 2)


def test_targets_gauges_follow_the_last_report_and_the_configured_count() -> None:
    m = SelfMetrics()
    m.scrape_finished(report("t1"))
    m.scrape_finished(report("t1", status=ScrapeStatus.ERROR, reason="http_status"))
    assert values(m)[("mcc_targets_up", ())] == 0
    m.scrape_finished(report("t1"))
    m.scrape_finished(report("t2"))
    m.set_targets(5)
    v = values(m)
    assert v[("mcc_targets_up", ())] == 2 and v[("mcc_targets", ())] == 5
    m.forget_target("t2")
    m.forget_target("never-seen")
    assert values(m)[("mcc_targets_up", ())] == 1
    m.scrape_finished(report("t3"))
    m.retain_targets({"t3"})
    assert set(m.last_reports) == {"t3"}


def test_no_target_urls_ids_or_secrets_in_metrics() -> None:
    token = Secret("tok-selfmetrics-canary-9f2")
    m = SelfMetrics()
    url = f"http://127.0.0.1:9400/metrics?token={token.reveal()}"
    m.scrape_finished(report("acct/dcgm/http://10.1.2.3:9400/metrics", url=url))
    m.sink_error("samples", f"HTTP 401 {token.reveal()}")
    text = m.render().decode()
    assert token.reveal() not in text
    assert "10.1.2.3" not in text and "127.0.0.1" not in text and "acct/dcgm" not in text


def test_invalid_samples_and_sink_metrics() -> None:
    m = SelfMetrics()
    m.samples_invalid("nan", 3)
    m.samples_invalid("nan", 0)
    m.samples_invalid("Out Of Range!", 2)
    m.rows_written("samples", 1000, 50_000, 0.2)
    m.rows_written("samples", 10, 500, 0.01)
    m.sink_error("samples", "Code: 241")
    m.rows_dropped("gpu_samples", "buffer_full", 7)
    m.rows_dropped("gpu_samples", "buffer_full", 0)
    m.queue_depth("samples", 12, 3400)
    m.queue_depth("samples", 2, 400)
    v = values(m)
    assert v[("mcc_samples_invalid_total", (("reason", "nan"),))] == 3
    assert v[("mcc_samples_invalid_total", (("reason", "out_of_range"),))] == 2
    assert v[("mcc_sink_rows_total", (("table", "samples"),))] == 1010
    assert v[("mcc_sink_bytes_total", (("table", "samples"),))] == 50_500
    assert v[("mcc_sink_insert_duration_seconds_count", ())] == 2
    assert v[("mcc_sink_errors_total", (("reason", "code_241"), ("table", "samples")))] == 1
    assert v[("mcc_sink_rows_dropped_total", (("reason", "buffer_full"), ("table", "gpu_samples")))] == 7
    assert v[("mcc_sink_queue_rows", (("table", "samples"),))] == 2
    assert v[("mcc_sink_queue_bytes", (("table", "samples"),))] == 400


def test_loop_lag_max_is_over_the_last_60_seconds() -> None:
    clock = FakeClock()
    m = SelfMetrics(clock=clock)
    assert m.loop_lag_max() == 0.0
    m.loop_lag(0.5)
    clock.now += 10
    m.loop_lag(2.0)
    clock.now += 10
    m.loop_lag(0.1)
    m.loop_lag(-1.0)  # clock skew: counted as 0
    assert m.loop_lag_max() == 2.0
    assert values(m)[("mcc_event_loop_lag_max_seconds", ())] == 2.0
    clock.now += 51  # the 2.0 s lag is now 61 s old, the 0.1 s one 51 s
    assert m.loop_lag_max() == 0.1
    clock.now += 30
    assert m.loop_lag_max() == 0.0
    v = values(m)
    assert v[("mcc_event_loop_lag_seconds_count", ())] == 4
    assert v[("mcc_event_loop_lag_seconds_sum", ())] == 2.6


def test_label_values_are_capped() -> None:
    m = SelfMetrics()
    for i in range(MAX_LABEL_VALUES + 20):
        m.samples_invalid(f"reason_{i}", 1)
    v = values(m)
    reasons = {dict(k[1])["reason"] for k in v if k[0] == "mcc_samples_invalid_total"}
    assert len(reasons) == MAX_LABEL_VALUES + 1
    assert v[("mcc_samples_invalid_total", (("reason", OTHER),))] == 20
    m.samples_invalid("reason_0", 1)  # a value seen before the cap keeps its own series
    assert values(m)[("mcc_samples_invalid_total", (("reason", "reason_0"),))] == 2


@given(st.text(max_size=200))
def test_label_sanitizer_output_is_safe(value: str) -> None:
    out = _BoundedValues()(value)
    assert 0 < len(out) <= 48
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789_" for c in out)


def test_two_instances_do_not_collide() -> None:
    a, b = SelfMetrics(), SelfMetrics()
    a.scrape_finished(report())
    assert ("mcc_scrapes_total", (("kind", "node"), ("status", "ok"))) not in values(b)
