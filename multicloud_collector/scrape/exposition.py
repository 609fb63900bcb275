"""Scrape kinds "node" and "generic": any Prometheus text / OpenMetrics endpoint.

fetch -> parse -> one ``SampleBlock`` (plus one per distinct explicit sample timestamp) ->
``validate_block`` -> Prometheus-style ``up`` / ``scrape_*`` series. A parse error or limit
violation fails the whole scrape (no partial rows), like Prometheus.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import structlog

from multicloud_collector.model import SampleBlock, ScrapeOutput, TargetContext
from multicloud_collector.normalize.values import validate_block
from multicloud_collector.parse.exposition import (
    ExpositionError,
    ParsedExposition,
    SeriesCache,
    parse_exposition,
)
from multicloud_collector.scrape.base import (
    SyntheticSeries,
    Target,
    error_report,
    failure_output,
    fetch_error_report,
    now_ms,
    ok_report,
)
from multicloud_collector.scrape.http import SCRAPE_ACCEPT, FetchError, FetchResult, fetch

log = structlog.get_logger(__name__)

# Bodies above this are parsed on a worker thread so one big target does not stall the loop.
THREAD_PARSE_BYTES = 256 * 1024


def blocks_from_parsed(parsed: ParsedExposition, ctx: TargetContext, ts_ms: int) -> list[SampleBlock]:
    """Samples without an explicit timestamp go to the scrape-time block (always first)."""
    main = SampleBlock(ctx=ctx, ts_ms=ts_ms)
    stamps = parsed.timestamps_ms
    if not stamps or all(t is None for t in stamps):
        main.series = list(parsed.series)
        main.values = list(parsed.values)
        return [main]
    others: dict[int, SampleBlock] = {}
    for s, v, t in zip(parsed.series, parsed.values, stamps, strict=True):
        b = main if t is None else others.get(t)
        if b is None:
            assert t is not None
            b = others[t] = SampleBlock(ctx=ctx, ts_ms=t)
        b.series.append(s)
        b.values.append(v)
    return [main, *(others[t] for t in sorted(others))]


class CacheMixin:
    """Per-target ``SeriesCache``; rebuilt when the target's extra labels change."""

    def __init__(self) -> None:
        self._caches: dict[str, tuple[tuple[tuple[str, str], ...], SeriesCache]] = {}
        self._synth = SyntheticSeries()

    def _cache(self, target: Target) -> SeriesCache:
        entry = self._caches.get(target.id)
        if entry is None or entry[0] != target.extra_labels:
            cache = SeriesCache(
                target.id, extra_labels=target.extra_labels, series_filter=target.series_filter
            )
            entry = (target.extra_labels, cache)
            self._caches[target.id] = entry
        return entry[1]

    def forget(self, target_id: str) -> None:
        """Drop the caches of a target that was removed from the config."""
        self._caches.pop(target_id, None)
        self._synth.forget(target_id)

    async def _fetch_and_parse(
        self, target: Target, session: aiohttp.ClientSession
    ) -> tuple[FetchResult, ParsedExposition]:
        res = await fetch(
            session,
            target.url,
            timeout=target.timeout,
            max_bytes=target.limits.body_size_bytes,
            accept=SCRAPE_ACCEPT,
            headers=target.request_headers(),
        )
        cache = self._cache(target)
        if res.nbytes > THREAD_PARSE_BYTES:
            parsed = await asyncio.to_thread(
                parse_exposition, res.body, content_type=res.content_type, limits=target.limits, cache=cache
            )
        else:
            parsed = parse_exposition(
                res.body, content_type=res.content_type, limits=target.limits, cache=cache
            )
        return res, parsed

    async def _fetch_parse_or_fail(
        self, target: Target, session: aiohttp.ClientSession, ts_ms: int, t0: float
    ) -> tuple[FetchResult, ParsedExposition] | ScrapeOutput:
        """The parsed body, or the failed scrape's output (``up=0``) when fetch or parse failed."""
        try:
            return await self._fetch_and_parse(target, session)
        except FetchError as exc:
            dur = time.monotonic() - t0
            report = fetch_error_report(target, ts_ms, dur, exc)
        except ExpositionError as exc:
            dur = time.monotonic() - t0
            message = f"invalid exposition from {target.shown_url}: {exc}"
            report = error_report(target, ts_ms, dur, exc.reason, message)
        return failure_output(target, self._synth, ts_ms, dur, report)


class ExpositionScraper(CacheMixin):
    """Scrapes node_exporter ("node") and any other exporter ("generic")."""

    source = "exposition"

    def __init__(self, kind: str = "generic") -> None:
        super().__init__()
        self.kind = kind

    async def scrape(self, target: Target, session: aiohttp.ClientSession) -> ScrapeOutput:
        ts_ms = now_ms()
        t0 = time.monotonic()
        got = await self._fetch_parse_or_fail(target, session, ts_ms, t0)
        if isinstance(got, ScrapeOutput):
            return got
        res, parsed = got
        blocks = blocks_from_parsed(parsed, target.ctx, ts_ms)
        kept = dropped = 0
        invalid: list[dict[str, int]] = []
        for b in blocks:
            stats = validate_block(b, parsed.types)
            kept += stats.kept
            dropped += stats.dropped
            invalid.append(stats.by_reason)
        dur = time.monotonic() - t0
        scraped = len(parsed.values)
        self._synth.append(blocks[0], target, up=True, duration_s=dur, samples=scraped, nbytes=res.nbytes)
        if parsed.duplicates:
            log.info("scrape_duplicate_series", target=target.id, duplicates=parsed.duplicates)
        report = ok_report(target, ts_ms, dur, samples=kept, nbytes=res.nbytes, dropped=dropped)
        out = ScrapeOutput(report=report, blocks=blocks)
        for by_reason in invalid:
            out.count_invalid(by_reason)
        return out
