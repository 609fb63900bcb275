"""``mcc collect --once``: one cycle over the chosen accounts, stored, summarized per target."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from multicloud_collector.collect import build_targets, collect_all
from multicloud_collector.config import Config
from multicloud_collector.model import ScrapeOutput
from multicloud_collector.observe import NullObserver
from multicloud_collector.pipeline import ApiRowWriter, OutputWriter
from multicloud_collector.plugins.manager import Registry, get_plugin_manager
from multicloud_collector.providers.collector import ApiRowSink, ProviderCollector
from multicloud_collector.providers.records import BillingLine, Instance, ProviderStatus
from multicloud_collector.runtime import make_batcher, make_session, make_sink
from multicloud_collector.secrets import safe_url


class UnknownAccountError(ValueError):
    pass


def result_row(out: ScrapeOutput) -> dict[str, Any]:
    r = out.report
    return {
        "account": r.ctx.account,
        "customer": r.ctx.customer,
        "provider": r.ctx.provider,
        "target": r.ctx.target,
        "kind": r.ctx.kind,
        "url": r.url,
        "status": r.status.value,
        "samples": r.samples,
        "gpus": len(out.gpus),
        "bytes": r.bytes,
        "duration_ms": round(r.duration_ms, 1),
        "error": r.error or None,
    }


async def collect_once(
    config: Config, *, accounts: Sequence[str] = (), store: bool = True, registry: Registry | None = None
) -> list[dict[str, Any]]:
    """Scrape every target of the selected accounts once and run their provider API jobs once;
    store the rows unless ``store`` is False.

    The store is opened *before* scraping so a locked store fails fast instead of throwing the
    scraped data away.
    """
    enabled = {a.id: a for a in config.enabled_accounts()}
    known = {a.id for a in config.accounts}
    unknown = [a for a in accounts if a not in known]
    if unknown:
        raise UnknownAccountError(f"unknown account id(s): {', '.join(unknown)}")
    selected = [a for a in accounts if a in enabled] if accounts else list(enabled)
    reg = registry or Registry(get_plugin_manager())
    targets = build_targets(config, reg.scrapers, accounts=selected, hooks=reg)
    observer = NullObserver()
    session = make_session(config)
    sink = make_sink(config, observer, session=session) if store else None
    try:
        if sink is not None:
            await sink.start()
        batcher = make_batcher(config, sink, observer) if sink is not None else None
        by_account = {a: [t for t in targets if t.ctx.account == a] for a in selected}
        results = await asyncio.gather(
            *(collect_all(a, ts, session, reg.scrapers) for a, ts in by_account.items() if ts)
        )
        outputs = [o for res in results for o in res.outputs]
        if batcher is not None:
            writer = OutputWriter(batcher)
            for o in outputs:
                await writer(o)
        api_sink: ApiRowSink = ApiRowWriter(batcher) if batcher is not None else _DiscardApiRows()
        providers = ProviderCollector(config, reg.adapters, session, api_sink)
        try:
            statuses = await providers.run_once(selected)
        finally:
            await providers.close()
        if batcher is not None:
            await batcher.close(grace=config.collector.shutdown_grace)
    finally:
        if sink is not None:
            await sink.close()
        await session.close()
    return [result_row(o) for o in outputs] + [api_result_row(s) for s in statuses]


class _DiscardApiRows:
    """``--no-store``: API rows are counted in the report but written nowhere."""

    async def instances(self, customer: str, rows: Sequence[Instance], observed_ms: int) -> None:
        pass

    async def billing(self, customer: str, rows: Sequence[BillingLine], observed_ms: int) -> None:
        pass

    async def status(self, rows: Sequence[ProviderStatus]) -> None:
        pass


def api_result_row(s: ProviderStatus) -> dict[str, Any]:
    """A provider API job in the same shape as a scrape target (``kind`` is ``api:<job>``)."""
    return {
        "account": s.account,
        "customer": s.customer,
        "provider": s.provider,
        "target": f"{s.account}/api/{s.job}",
        "kind": f"api:{s.job}",
        "url": safe_url(s.base_url) if s.base_url else "",
        "status": "ok" if s.status == "ok" else "error",
        "samples": s.instances + s.billing_lines,
        "gpus": 0,
        "bytes": 0,
        "duration_ms": round(s.duration_ms, 1),
        "error": s.error or None,
    }


def format_results(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "no targets (no enabled account has exporters or prometheus queries)\n"
    header = ("ACCOUNT", "PROVIDER", "KIND", "STATUS", "SAMPLES", "GPUS", "MS", "TARGET / ERROR")
    lines = [header]
    for r in rows:
        tail = r["url"] + (f"  error: {r['error']}" if r["error"] else "")
        lines.append(
            (
                r["account"],
                r["provider"],
                r["kind"],
                r["status"],
                str(r["samples"]),
                str(r["gpus"]),
                f"{r['duration_ms']:.0f}",
                tail,
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    text = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in lines
    )
    failed = sum(1 for r in rows if r["status"] != "ok")
    return f"{text}\n\n{len(rows)} targets, {len(rows) - failed} ok, {failed} failed\n"
