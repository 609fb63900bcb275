"""From scrape outputs to table batches: the one place that knows which rows go to which table."""

from __future__ import annotations

from collections.abc import Sequence

from multicloud_collector.model import ScrapeOutput
from multicloud_collector.providers.records import BillingLine, Instance, ProviderStatus
from multicloud_collector.sink.batcher import Batcher
from multicloud_collector.sink.encode import (
    encode_billing,
    encode_block,
    encode_gpus,
    encode_instances,
    encode_provider_status,
    encode_reports,
)

SAMPLES = "samples"
GPU_SAMPLES = "gpu_samples"
SCRAPE_LOG = "scrape_log"
INSTANCES = "instances"
BILLING = "billing"
PROVIDER_METADATA = "provider_metadata"


class OutputWriter:
    """Encodes each scrape output once and hands the bytes to the batcher.

    Encoding happens on the event loop: it is a few hundred microseconds per scrape and moving
    pure-Python work to a thread would not help under the GIL. Inserts (the slow part) run on the
    sink's own thread.
    """

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    async def __call__(self, out: ScrapeOutput) -> None:
        for block in out.blocks:
            if len(block):
                await self._batcher.add(SAMPLES, encode_block(block), len(block))
        if out.gpus:
            await self._batcher.add(GPU_SAMPLES, encode_gpus(out.gpus), len(out.gpus))
        await self._batcher.add(SCRAPE_LOG, encode_reports([out.report]), 1)


class ApiRowWriter:
    """Provider API rows (instances, billing lines, job status) to their tables via the batcher."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    async def instances(self, customer: str, rows: Sequence[Instance], observed_ms: int) -> None:
        if rows:
            await self._batcher.add(INSTANCES, encode_instances(rows, customer, observed_ms), len(rows))

    async def billing(self, customer: str, rows: Sequence[BillingLine], observed_ms: int) -> None:
        if rows:
            await self._batcher.add(BILLING, encode_billing(rows, customer, observed_ms), len(rows))

    async def status(self, rows: Sequence[ProviderStatus]) -> None:
        if rows:
            await self._batcher.add(PROVIDER_METADATA, encode_provider_status(rows), len(rows))
