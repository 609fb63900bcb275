"""Scrape kind "promql": configured instant queries against a Prometheus-compatible HTTP API.

Each query is ``GET {url}/api/v1/query?query=..&time=<scrape time>``. Results become sample
blocks (one per distinct timestamp): a vector's ``__name__`` is the metric (else the query name),
every series gets ``query=<name>``. One failing query fails the target's report but the samples of
the other queries are kept, because a typo in one query should not blank a customer's dashboard.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import structlog

from multicloud_collector.model import SampleBlock, ScrapeOutput, Series
from multicloud_collector.normalize.series import sanitize_label_name, series_id
from multicloud_collector.normalize.values import validate_block
from multicloud_collector.scrape.base import PromQuery, Target, error_report, now_ms, ok_report
from multicloud_collector.scrape.http import JSON_ACCEPT, FetchError, fetch
from multicloud_collector.secrets import redact

log = structlog.get_logger(__name__)

QUERY_CONCURRENCY = 4
MAX_ERROR_TEXT = 300


class QueryError(Exception):
    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(slots=True)
class QueryResult:
    """Samples of one query as (timestamp ms, series, value)."""

    points: list[tuple[int, Series, float]] = field(default_factory=list)
    nbytes: int = 0


def _text(value: object) -> str:
    s = str(value)
    return s if len(s) <= MAX_ERROR_TEXT else s[:MAX_ERROR_TEXT] + "..."


def _api_error(name: str, body: bytes) -> str | None:
    """``errorType: error`` from a Prometheus error body, if it is one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and data.get("status") == "error":
        return f"query {name!r} failed: {_text(data.get('errorType', '?'))}: {_text(data.get('error', ''))}"
    return None


def _point(pair: object, where: str) -> tuple[int, float]:
    if not isinstance(pair, list) or len(pair) != 2:
        raise QueryError("protocol", f"{where}: expected [timestamp, value], got {_text(pair)}")
    ts, raw = pair
    try:
        return round(float(ts) * 1000), float(raw)
    except (TypeError, ValueError):
        raise QueryError("protocol", f"{where}: invalid sample {_text(pair)}") from None


class PromQLScraper:
    kind = "promql"
    source = "promql"

    def __init__(self) -> None:
        self._series: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Series]] = {}

    def forget(self, target_id: str) -> None:
        self._series.pop(target_id, None)

    def _series_for(self, target: Target, metric: str, labels: tuple[tuple[str, str], ...]) -> Series:
        cache = self._series.setdefault(target.id, {})
        key = (metric, labels)
        s = cache.get(key)
        if s is None:
            limit = target.limits.samples_per_scrape or 100_000
            if len(cache) > 4 * limit:  # churny queries: bound the cache instead of growing forever
                cache.clear()
            s = cache[key] = Series(
                metric=metric, labels=labels, series_id=series_id(target.id, metric, labels)
            )
        return s

    def _labels(
        self, target: Target, q: PromQuery, metric: dict[str, Any]
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        name = str(metric.get("__name__") or q.name)
        labels = {sanitize_label_name(str(k)): str(v) for k, v in metric.items() if k != "__name__"}
        labels["query"] = q.name
        labels.update(target.extra_labels)  # ours win over whatever the server returns
        limit = target.limits.labels_per_series
        if limit and len(labels) > limit:
            raise QueryError(
                "label_limit", f"query {q.name!r}: series with {len(labels)} labels (limit {limit})"
            )
        return name, tuple(sorted(labels.items()))

    def decode(self, target: Target, q: PromQuery, body: bytes) -> QueryResult:
        """Turn one ``/api/v1/query`` response body into points; raises ``QueryError``."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise QueryError("protocol", f"query {q.name!r}: response is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise QueryError("protocol", f"query {q.name!r}: response is not a JSON object")
        if data.get("status") != "success":
            msg = (
                _api_error(q.name, body) or f"query {q.name!r}: unexpected status {_text(data.get('status'))}"
            )
            raise QueryError("query", msg)
        warnings = data.get("warnings")
        if warnings:
            log.warning(
                "promql_warning", target=target.id, query=q.name, warnings=[_text(w) for w in warnings]
            )
        payload = data.get("data")
        if not isinstance(payload, dict):
            raise QueryError("protocol", f"query {q.name!r}: response has no data object")
        rtype, result = payload.get("resultType"), payload.get("result")
        out = QueryResult(nbytes=len(body))
        where = f"query {q.name!r}"
        if rtype == "scalar":
            ts, v = _point(result, where)
            out.points.append((ts, self._series_for(target, q.name, self._labels(target, q, {})[1]), v))
        elif rtype == "string":
            log.warning("promql_string_ignored", target=target.id, query=q.name)
        elif rtype in ("vector", "matrix"):
            if not isinstance(result, list):
                raise QueryError("protocol", f"{where}: {rtype} result is not a list")
            for item in result:
                if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict):
                    raise QueryError("protocol", f"{where}: malformed {rtype} element {_text(item)}")
                metric, labels = self._labels(target, q, item.get("metric", {}))
                series = self._series_for(target, metric, labels)
                pairs = [item.get("value")] if rtype == "vector" else item.get("values")
                if "histogram" in item or "histograms" in item:
                    log.info("promql_histogram_ignored", target=target.id, query=q.name)
                    continue
                if not isinstance(pairs, list):
                    raise QueryError("protocol", f"{where}: matrix element without values")
                for pair in pairs:
                    ts, v = _point(pair, where)
                    out.points.append((ts, series, v))
        else:
            raise QueryError("protocol", f"{where}: unknown resultType {_text(rtype)}")
        limit = target.limits.samples_per_scrape
        if limit and len(out.points) > limit:
            raise QueryError(
                "sample_limit", f"{where}: {len(out.points)} samples exceed the limit of {limit}"
            )
        return out

    async def _query(
        self,
        target: Target,
        q: PromQuery,
        session: aiohttp.ClientSession,
        eval_ts: float,
        sem: asyncio.Semaphore,
    ) -> QueryResult:
        params = {
            "query": q.expr,
            "time": f"{eval_ts:.3f}",
            "timeout": f"{max(100, int(target.timeout * 900))}ms",  # Prometheus durations take no fractions
        }
        url = f"{target.url.rstrip('/')}/api/v1/query?{urlencode(params)}"
        async with sem:
            try:
                res = await fetch(
                    session,
                    url,
                    timeout=target.timeout,
                    max_bytes=target.limits.body_size_bytes,
                    accept=JSON_ACCEPT,
                    headers=target.request_headers(),
                )
            except FetchError as exc:
                api = _api_error(q.name, exc.body) if exc.body else None
                msg = f"{api} ({exc.message})" if api else f"query {q.name!r}: {exc.message}"
                raise QueryError(exc.reason, msg, status=exc.status) from None
        return self.decode(target, q, res.body)

    async def scrape(self, target: Target, session: aiohttp.ClientSession) -> ScrapeOutput:
        ts_ms = now_ms()
        t0 = time.monotonic()
        sem = asyncio.Semaphore(QUERY_CONCURRENCY)
        results = await asyncio.gather(
            *(self._query(target, q, session, ts_ms / 1000.0, sem) for q in target.queries),
            return_exceptions=True,
        )
        blocks: dict[int, SampleBlock] = {}
        failures: list[QueryError] = []
        nbytes = 0
        for q, res in zip(target.queries, results, strict=True):
            if isinstance(res, QueryError):
                failures.append(res)
                continue
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res  # cancellation and friends propagate
                log.exception("promql_decode_crashed", target=target.id, query=q.name, exc_info=res)
                failures.append(QueryError("protocol", f"query {q.name!r}: {type(res).__name__}: {res}"))
                continue
            nbytes += res.nbytes
            for ts, series, v in res.points:
                b = blocks.get(ts)
                if b is None:
                    b = blocks[ts] = SampleBlock(ctx=target.ctx, ts_ms=ts)
                b.series.append(series)
                b.values.append(v)
        out_blocks = [blocks[t] for t in sorted(blocks)]
        kept = dropped = 0
        invalid: list[dict[str, int]] = []
        for b in out_blocks:
            stats = validate_block(b, {})
            kept += stats.kept
            dropped += stats.dropped
            invalid.append(stats.by_reason)
        dur = time.monotonic() - t0
        if failures:
            for f in failures:
                log.warning("promql_query_failed", target=target.id, reason=f.reason, error=redact(f.message))
            names = "; ".join(f.message for f in failures)
            count = f"{len(failures)} of {len(target.queries)}"
            msg = f"{count} PromQL queries failed on {target.shown_url}: {names}"
            report = replace(
                error_report(target, ts_ms, dur, failures[0].reason, msg, nbytes=nbytes),
                samples=kept,
                dropped=dropped,
            )
        else:
            report = ok_report(target, ts_ms, dur, samples=kept, nbytes=nbytes, dropped=dropped)
        out = ScrapeOutput(report=report, blocks=out_blocks)
        for by_reason in invalid:
            out.count_invalid(by_reason)
        return out
