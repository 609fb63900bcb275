"""Scrape kind "dcgm": NVIDIA dcgm-exporter.

Same fetch and parser as any exposition target; ``normalize.dcgm.dcgm_rows`` then folds the
per-GPU ``DCGM_FI_*`` series into one ``GpuSample`` per GPU, and whatever it cannot map stays a
plain sample block so nothing the exporter sends is lost. A missing exporter fails this target only.
"""

from __future__ import annotations

import time

import aiohttp
import structlog

from multicloud_collector.model import SampleBlock, ScrapeOutput
from multicloud_collector.normalize.dcgm import dcgm_rows
from multicloud_collector.normalize.values import validate_block
from multicloud_collector.parse.exposition import ParsedExposition
from multicloud_collector.scrape.base import Target, now_ms, ok_report
from multicloud_collector.scrape.exposition import CacheMixin

log = structlog.get_logger(__name__)


def rest_block(parsed: ParsedExposition, rest: list[int], target: Target, ts_ms: int) -> SampleBlock:
    """The series ``dcgm_rows`` did not map to a GPU column, as a plain sample block."""
    block = SampleBlock(ctx=target.ctx, ts_ms=ts_ms)
    block.series = [parsed.series[i] for i in rest]
    block.values = [parsed.values[i] for i in rest]
    return block


class DcgmScraper(CacheMixin):
    kind = "dcgm"
    source = "dcgm"

    async def scrape(self, target: Target, session: aiohttp.ClientSession) -> ScrapeOutput:
        ts_ms = now_ms()
        t0 = time.monotonic()
        got = await self._fetch_parse_or_fail(target, session, ts_ms, t0)
        if isinstance(got, ScrapeOutput):
            return got
        res, parsed = got
        result = dcgm_rows(parsed, target.ctx, ts_ms)
        block = rest_block(parsed, result.rest, target, ts_ms)
        stats = validate_block(block, parsed.types)
        dur = time.monotonic() - t0
        self._synth.append(
            block, target, up=True, duration_s=dur, samples=len(parsed.values), nbytes=res.nbytes
        )
        dropped = stats.dropped + result.sentinels + result.out_of_range
        if not result.gpus:
            log.warning("dcgm_no_gpus", target=target.id, series=len(parsed.values))
        samples = len(parsed.values) - dropped  # every sample that reached a GPU row or the block
        report = ok_report(target, ts_ms, dur, samples=samples, nbytes=res.nbytes, dropped=dropped)
        out = ScrapeOutput(report=report, blocks=[block], gpus=list(result.gpus))
        out.count_invalid(stats.by_reason)
        out.count_invalid({"sentinel": result.sentinels, "out_of_range": result.out_of_range})
        return out
