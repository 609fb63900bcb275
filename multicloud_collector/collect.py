"""From config to targets, and one concurrent collection pass over an account's targets.

Target ids are ``{account}/{kind}/{redacted url}``: stable across restarts (they drive the
scheduler's phase offsets and sharding) and safe to show anywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from hashlib import blake2b
from typing import Protocol

import aiohttp
import structlog

from multicloud_collector.config.model import (
    AccountConfig,
    Config,
    clamp_timeout,
    exporter_interval,
    exporter_timeout,
)
from multicloud_collector.model import AccountResult, ScrapeOutput, TargetContext
from multicloud_collector.parse.cache import SeriesFilter
from multicloud_collector.scrape.base import (
    HeaderValue,
    PromQuery,
    RetryPolicy,
    Scraper,
    Target,
    error_report,
    now_ms,
)
from multicloud_collector.secrets import Secret, safe_url

log = structlog.get_logger(__name__)

_SOURCES = {"node": "exposition", "generic": "exposition", "dcgm": "dcgm", "promql": "promql"}


def target_id(account_id: str, kind: str, url: str) -> str:
    return f"{account_id}/{kind}/{safe_url(url)}"


def stable_hash(text: str) -> int:
    """A process-independent 64-bit hash (``hash()`` is salted per process)."""
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def in_shard(tid: str, index: int, count: int) -> bool:
    return count <= 1 or stable_hash(tid) % count == index


def _headers(
    headers: Mapping[str, HeaderValue], bearer: Secret | None
) -> tuple[tuple[str, HeaderValue], ...]:
    merged: dict[str, HeaderValue] = dict(headers)
    if bearer is not None:
        merged["Authorization"] = Secret(f"Bearer {bearer.reveal()}")
    return tuple(sorted(merged.items()))


def _source(kind: str, scrapers: Mapping[str, Scraper] | None) -> str:
    if kind in _SOURCES:
        return _SOURCES[kind]
    scraper = scrapers.get(kind) if scrapers else None
    return str(getattr(scraper, "source", kind))


def _account_targets(
    config: Config, account: AccountConfig, scrapers: Mapping[str, Scraper] | None
) -> list[Target]:
    col = config.collector
    retries = RetryPolicy(col.retries.max_tries, col.retries.base_delay, col.retries.max_delay)
    out: list[Target] = []

    def ctx(kind: str, url: str) -> TargetContext:
        return TargetContext(
            customer=account.customer,
            provider=account.provider,
            account=account.id,
            target=target_id(account.id, kind, url),
            kind=kind,
            source=_source(kind, scrapers),
        )

    for exp in account.exporters:
        if not exp.enabled:
            continue
        if scrapers is not None and exp.kind not in scrapers:
            log.warning("unknown_scrape_kind", account=account.id, kind=exp.kind, url=safe_url(exp.url))
            continue
        labels = {**account.labels, **exp.labels}
        out.append(
            Target(
                ctx=ctx(exp.kind, exp.url),
                url=exp.url,
                interval=exporter_interval(exp, account, col),
                timeout=exporter_timeout(exp, account, col),
                limits=col.limits,
                headers=_headers(exp.headers, exp.bearer_token),
                extra_labels=tuple(sorted(labels.items())),
                retries=retries,
            )
        )
    prom = account.prometheus
    if prom is not None and prom.queries:
        if scrapers is not None and "promql" not in scrapers:
            log.warning("unknown_scrape_kind", account=account.id, kind="promql", url=safe_url(prom.url))
        else:
            interval = account.effective_interval(col)
            timeout = (
                clamp_timeout(prom.scrape_timeout, interval)
                if prom.scrape_timeout is not None
                else account.effective_timeout(col)
            )
            out.append(
                Target(
                    ctx=ctx("promql", prom.url),
                    url=prom.url,
                    interval=interval,
                    timeout=timeout,
                    limits=col.limits,
                    headers=_headers(prom.headers, prom.bearer_token),
                    extra_labels=tuple(sorted(account.labels.items())),
                    queries=tuple(PromQuery(q.name, q.expr) for q in prom.queries),
                    retries=retries,
                )
            )
    return out


class TargetHooks(Protocol):
    """The plugin decisions applied to each target (implemented by ``plugins.manager.Registry``)."""

    def extra_labels(self, ctx: TargetContext) -> tuple[tuple[str, str], ...]: ...

    def series_filter(self, ctx: TargetContext) -> SeriesFilter | None: ...


def _with_hooks(t: Target, hooks: TargetHooks) -> Target:
    """Plugin labels first, then the config's: what the user wrote explicitly wins."""
    labels = dict(hooks.extra_labels(t.ctx))
    labels.update(t.extra_labels)
    return replace(t, extra_labels=tuple(sorted(labels.items())), series_filter=hooks.series_filter(t.ctx))


def build_targets(
    config: Config,
    scrapers: Mapping[str, Scraper] | None = None,
    accounts: Iterable[str] | None = None,
    *,
    hooks: TargetHooks | None = None,
) -> list[Target]:
    """Every target of the enabled accounts (optionally only ``accounts``) that belongs to this shard.

    A kind without a registered scraper is skipped with a warning when ``scrapers`` is given.
    Duplicate target ids (the same URL listed twice) are kept once. ``hooks`` applies the
    plugins' ``extra_labels`` and ``filter_series`` once per target.
    """
    wanted = set(accounts) if accounts is not None else None
    shard = config.collector.shard
    seen: set[str] = set()
    out: list[Target] = []
    for account in config.enabled_accounts():
        if wanted is not None and account.id not in wanted:
            continue
        for t in _account_targets(config, account, scrapers):
            if t.id in seen:
                log.warning("duplicate_target", target=t.id)
                continue
            seen.add(t.id)
            if in_shard(t.id, shard.index, shard.count):
                out.append(_with_hooks(t, hooks) if hooks is not None else t)
    return out


async def scrape_one(
    target: Target, session: aiohttp.ClientSession, scrapers: Mapping[str, Scraper]
) -> ScrapeOutput:
    """Run one scrape; a missing scraper or a crashing plugin becomes an error report, never an exception."""
    scraper = scrapers.get(target.ctx.kind)
    ts = now_ms()
    t0 = time.monotonic()
    if scraper is None:
        report = error_report(
            target, ts, 0.0, "config", f"no scraper registered for kind {target.ctx.kind!r}"
        )
        return ScrapeOutput(report=report)
    try:
        return await scraper.scrape(target, session)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("scraper_crashed", target=target.id, kind=target.ctx.kind)
        report = error_report(
            target,
            ts,
            time.monotonic() - t0,
            "internal",
            f"scraper {target.ctx.kind!r} crashed: {type(exc).__name__}",
        )
        return ScrapeOutput(report=report)


async def collect_all(
    account_id: str,
    targets: Iterable[Target],
    session: aiohttp.ClientSession,
    scrapers: Mapping[str, Scraper],
) -> AccountResult:
    """Scrape all targets of one account concurrently; one target's failure never affects the others."""
    mine = [t for t in targets if t.ctx.account == account_id]
    provider = mine[0].ctx.provider if mine else ""
    outputs = await asyncio.gather(*(scrape_one(t, session, scrapers) for t in mine))
    result = AccountResult(account=account_id, provider=provider, outputs=list(outputs))
    for tid, err in result.errors.items():
        log.warning("scrape_failed", account=account_id, target=tid, error=err)
    return result
