"""API collection jobs: inventory every 5 min and billing every hour per account, beside the scrapes.

Provider APIs fail differently from exporters (expired tokens, outages, rate limits) and must never
hold up metrics: each (account, job) runs as its own asyncio task on a stable phase-offset grid
(the scheduler's ``phase_offset``), failures mark only that account "degraded" with the reason
(``provider_metadata`` and ``/readyz``), and the next success clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import structlog

from multicloud_collector.config.model import AccountConfig, Config
from multicloud_collector.providers.base import ProviderAdapter, seconds_setting
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.records import BillingLine, Instance, ProviderStatus
from multicloud_collector.scheduler import first_tick, phase_offset
from multicloud_collector.secrets import redact, safe_url

log = structlog.get_logger(__name__)

INVENTORY = "inventory"
BILLING = "billing"
DEFAULT_INTERVALS: Mapping[str, float] = {INVENTORY: 300.0, BILLING: 3600.0}


class ApiRowSink(Protocol):
    """Where collected rows go (``pipeline.ApiRowWriter`` in the daemon, a list in tests)."""

    async def instances(self, customer: str, rows: Sequence[Instance], observed_ms: int) -> None: ...

    async def billing(self, customer: str, rows: Sequence[BillingLine], observed_ms: int) -> None: ...

    async def status(self, rows: Sequence[ProviderStatus]) -> None: ...


class UnknownAdapterError(LookupError):
    """An account wants API collection but no adapter of that name is registered."""


def adapter_name(config: Config, account: AccountConfig, adapters: Mapping[str, type] = {}) -> str | None:
    """The adapter an account uses: its provider's ``adapter:`` in the catalog, else an installed
    adapter registered under the provider's name (docs/configuration.md), else None (no API jobs)."""
    spec = config.providers.get(account.provider)
    if spec is not None and spec.adapter:
        return spec.adapter
    return account.provider if account.provider in adapters else None


def wants_api(account: AccountConfig) -> bool:
    """An account collects from its provider API when it has an ``api:`` block not switched off."""
    return bool(account.api) and account.api.get("enabled", True) not in (False, "false", "off", "no")


def adapter_class(
    config: Config, account: AccountConfig, adapters: Mapping[str, type]
) -> type[ProviderAdapter]:
    name = adapter_name(config, account, adapters)
    if name is None:
        raise UnknownAdapterError(f"provider {account.provider!r} names no adapter in the catalog")
    cls = adapters.get(name)
    if cls is None:
        known = ", ".join(sorted(adapters)) or "none"
        raise UnknownAdapterError(f"no provider adapter {name!r} is installed (installed: {known})")
    return cls


def open_adapter(
    config: Config, account: AccountConfig, adapters: Mapping[str, type], session: aiohttp.ClientSession
) -> ProviderAdapter:
    """A ready adapter for ``account`` (raises UnknownAdapterError)."""
    return adapter_class(config, account, adapters)(account, session)


def job_interval(account: AccountConfig, job: str) -> float:
    return seconds_setting(account.api.get(f"{job}_interval"), DEFAULT_INTERVALS[job])


@dataclass(slots=True)
class JobState:
    """What the last run of one (account, job) did."""

    status: str = "pending"
    error: str = ""
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    runs: int = 0


@dataclass(slots=True)
class _Entry:
    account: AccountConfig
    adapter: ProviderAdapter | None
    jobs: dict[str, JobState] = field(default_factory=dict)
    setup_error: str = ""


class ProviderCollector:
    """All API collection jobs of a config; ``run(stop)`` until stopped, ``run_once()`` for one pass."""

    def __init__(
        self,
        config: Config,
        adapters: Mapping[str, type],
        session: aiohttp.ClientSession,
        sink: ApiRowSink,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.sink = sink
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        for account in config.enabled_accounts():
            if not wants_api(account):
                continue
            try:
                adapter: ProviderAdapter | None = open_adapter(config, account, adapters, session)
                error = ""
            except UnknownAdapterError as exc:
                if adapter_name(config, account, adapters) is None:  # no adapter named or installed
                    continue
                adapter, error = None, str(exc)
            except Exception as exc:  # an adapter that cannot even start: report, keep the rest
                adapter, error = None, redact(f"adapter failed to start: {type(exc).__name__}: {exc}")
            entry = _Entry(account, adapter, setup_error=error)
            for job in self._jobs_of(adapter):
                entry.jobs[job] = JobState()
            self._entries[account.id] = entry

    @staticmethod
    def _jobs_of(adapter: ProviderAdapter | None) -> list[str]:
        if adapter is None:
            return [INVENTORY]
        jobs = [INVENTORY] if "inventory" in adapter.capabilities else []
        if "billing" in adapter.capabilities:
            jobs.append(BILLING)
        return jobs

    @property
    def accounts(self) -> list[str]:
        return list(self._entries)

    def adapter(self, account_id: str) -> ProviderAdapter | None:
        entry = self._entries.get(account_id)
        return entry.adapter if entry is not None else None

    def job_state(self, account_id: str, job: str) -> JobState:
        return self._entries[account_id].jobs[job]

    # ---- state for /readyz ------------------------------------------------------------------------

    def degraded(self) -> list[dict[str, str]]:
        """Accounts whose last API call failed: account, provider, job, status and reason."""
        out = []
        for entry in self._entries.values():
            for job, st in entry.jobs.items():
                if st.status in ("degraded", "error"):
                    out.append(
                        {
                            "account": entry.account.id,
                            "provider": entry.account.provider,
                            "job": job,
                            "status": st.status,
                            "reason": st.error,
                        }
                    )
        return out

    def readiness_info(self) -> dict[str, Any]:
        """The ``api`` part of ``/readyz``: "ok" or "degraded" plus the degraded accounts.

        Readiness itself stays true: an API failure never stops metrics collection.
        """
        degraded = self.degraded()
        return {
            "status": "degraded" if degraded else "ok",
            "accounts": len(self._entries),
            "degraded": degraded,
        }

    # ---- running ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """One task per (account, job) on a phase-offset grid until ``stop`` is set."""
        tasks = [
            asyncio.create_task(self._loop(entry, job, stop), name=f"api:{account_id}:{job}")
            for account_id, entry in self._entries.items()
            for job in entry.jobs
        ]
        log.info("api_collection_started", accounts=len(self._entries), jobs=len(tasks))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_once(
        self, accounts: Iterable[str] | None = None, jobs: Sequence[str] = (INVENTORY, BILLING)
    ) -> list[ProviderStatus]:
        """Run the given jobs of the given accounts once (all by default), concurrently."""
        wanted = set(accounts) if accounts is not None else None
        calls: list[Awaitable[ProviderStatus]] = [
            self.run_job(account_id, job)
            for account_id, entry in self._entries.items()
            if wanted is None or account_id in wanted
            for job in entry.jobs
            if job in jobs
        ]
        return list(await asyncio.gather(*calls))

    async def close(self) -> None:
        for entry in self._entries.values():
            if entry.adapter is not None:
                with contextlib.suppress(Exception):
                    await entry.adapter.close()

    async def _loop(self, entry: _Entry, job: str, stop: asyncio.Event) -> None:
        interval = job_interval(entry.account, job)
        # First run soon after start (within a few seconds, spread by account), then on the grid.
        delay = phase_offset(f"api:{entry.account.id}:{job}", min(interval, 5.0))
        next_at = self._clock() + delay
        while not stop.is_set():
            if await _wait(stop, next_at - self._clock()):
                return
            await self.run_job(entry.account.id, job)
            now = self._clock()
            next_at = first_tick(now, interval, phase_offset(f"api:{entry.account.id}:{job}", interval))

    async def run_job(self, account_id: str, job: str) -> ProviderStatus:
        """Run one job now, write its rows and status row, update the degraded state."""
        entry = self._entries[account_id]
        state = entry.jobs[job]
        acct = entry.account
        started = time.perf_counter()
        now = datetime.fromtimestamp(self._clock(), UTC)
        observed_ms = int(now.timestamp() * 1000)
        n_inst = n_bill = 0
        status, error = "ok", ""
        if entry.adapter is None:
            status, error = "error", entry.setup_error
        else:
            try:
                if job == INVENTORY:
                    instances = await entry.adapter.instances()
                    n_inst = len(instances)
                    await self.sink.instances(acct.customer, instances, observed_ms)
                else:
                    lines = await entry.adapter.billing()
                    n_bill = len(lines)
                    await self.sink.billing(acct.customer, lines, observed_ms)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                status, error = "degraded", str(exc)
            except Exception as exc:
                status, error = "error", redact(f"{type(exc).__name__}: {exc}")
        state.runs += 1
        state.last_attempt = now
        if status == "ok":
            if state.status in ("degraded", "error"):
                log.info("provider_api_recovered", account=acct.id, provider=acct.provider, job=job)
            state.last_success = now
        else:
            log.warning("provider_api_failed", account=acct.id, provider=acct.provider, job=job, error=error)
        state.status, state.error = status, error
        row = self._status_row(entry, job, state, n_inst, n_bill, (time.perf_counter() - started) * 1000)
        try:
            await self.sink.status([row])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store's trouble is reported by the sink itself
            log.warning("provider_status_write_failed", account=acct.id, error=f"{type(exc).__name__}: {exc}")
        return row

    def _status_row(
        self, entry: _Entry, job: str, state: JobState, n_inst: int, n_bill: int, ms: float
    ) -> ProviderStatus:
        adapter = entry.adapter
        assert state.last_attempt is not None
        return ProviderStatus(
            provider=entry.account.provider,
            account=entry.account.id,
            customer=entry.account.customer,
            adapter=adapter.name if adapter is not None else adapter_name(self.config, entry.account) or "",
            job=job,
            status=state.status,
            last_attempt=state.last_attempt,
            last_success=state.last_success,
            error=state.error,
            display_name=adapter.display_name if adapter is not None else "",
            capabilities=tuple(sorted(adapter.capabilities)) if adapter is not None else (),
            base_url=safe_url(adapter.base_url) if adapter is not None else "",
            instances=n_inst,
            billing_lines=n_bill,
            duration_ms=round(ms, 3),
        )


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopped."""
    if seconds <= 0:
        return stop.is_set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
