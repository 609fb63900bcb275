"""OVHcloud adapter: Public Cloud instances, invoice lines (``/me/bill``) and current project usage.

Every call except ``/auth/time`` is signed (see ``signing``), so this adapter builds the full URL
itself and sends it through ``ApiClient.request`` with per-call headers; retries, timeouts and the
cache stay in the shared client. The v1 API returns lists of IDs, so bills cost one call per bill
and per bill line (bounded concurrency, cached for ``cache_ttl``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from multicloud_collector.config.fields import type_name
from multicloud_collector.config.model import AccountConfig
from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, require_credential
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.kubernetes.config_prices import (
    check_prices,
    config_currency,
    config_prices,
)
from multicloud_collector.providers.money import parse_money, parse_time
from multicloud_collector.providers.ovhcloud.signing import flavor_gpus, ovh_signature
from multicloud_collector.providers.records import (
    BillingKind,
    BillingLine,
    CheckResult,
    Instance,
    PriceSource,
    normalize_status,
)
from multicloud_collector.secrets import Secret

T = TypeVar("T")
DEFAULT_BILLING_DAYS = 62
FETCH_CONCURRENCY = 8
STATUS_MAP: Mapping[str, str] = {
    "active": "running",
    "build": "pending",
    "rebuild": "pending",
    "reboot": "pending",
    "hard_reboot": "pending",
    "resize": "pending",
    "verify_resize": "pending",
    "migrating": "pending",
    "rescue": "running",
    "shutoff": "stopped",
    "stopped": "stopped",
    "suspended": "stopped",
    "paused": "stopped",
    "shelved": "stopped",
    "shelved_offloaded": "stopped",
    "deleted": "terminated",
    "deleting": "terminated",
}


class OvhCloudAdapter(ProviderAdapter):
    name: ClassVar[str] = "ovhcloud"
    display_name: ClassVar[str] = "OVHcloud"
    default_base_url: ClassVar[str] = "https://eu.api.ovh.com/1.0"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing"})
    api_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "application_secret",
            "consumer_key",
            "projects",
            "gpu_flavors",
            "prices",
            "currency",
            "billing_days",
        }
    )
    credential_keys: ClassVar[tuple[str, ...]] = ("application_key",)

    def __init__(
        self,
        account: AccountConfig,
        session: aiohttp.ClientSession,
        *,
        base_url: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(account, session, base_url=base_url)
        self._wall = wall_clock
        self._delta: int | None = None
        self.prices_by_flavor = config_prices(self.api)
        self.currency = config_currency(self.api, "EUR")
        days = self.api.get("billing_days")
        self.billing_days = (
            days
            if isinstance(days, int) and not isinstance(days, bool) and days > 0
            else DEFAULT_BILLING_DAYS
        )
        projects = self.api.get("projects")
        self.only_projects = [str(p) for p in projects] if isinstance(projects, list) else None
        self.gpu_overrides = _gpu_overrides(self.api.get("gpu_flavors"))

    # ---- configuration ----------------------------------------------------------------------------

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        problems += require_credential(api, path, ("application_secret",))
        problems += require_credential(api, path, ("consumer_key",))
        problems += check_prices(api, path)
        days = api.get("billing_days")
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660
        ):
            problems.append(Problem(f"{path}.billing_days", "must be an integer 1-3660"))
        projects = api.get("projects")
        if projects is not None and (
            not isinstance(projects, list) or not all(isinstance(p, str) for p in projects)
        ):
            problems.append(
                Problem(f"{path}.projects", f"expected a list of project IDs, got {type_name(projects)}")
            )
        flavors = api.get("gpu_flavors")
        if flavors is not None:
            if not isinstance(flavors, Mapping):
                problems.append(
                    Problem(
                        f"{path}.gpu_flavors",
                        f"expected a mapping of flavor name to {{model, count}}, got {type_name(flavors)}",
                    )
                )
            else:
                for key, value in flavors.items():
                    ok = isinstance(value, Mapping) and isinstance(value.get("model"), str)
                    count = value.get("count") if isinstance(value, Mapping) else None
                    if not ok or isinstance(count, bool) or not isinstance(count, int) or count < 0:
                        problems.append(
                            Problem(
                                f"{path}.gpu_flavors.{key}", "expected {model: <GPU name>, count: <integer>}"
                            )
                        )
        return problems

    def auth_headers(self) -> Mapping[str, str | Secret]:
        return {}  # every call is signed individually

    def _secret(self, key: str) -> str:
        value = self.api.get(key)
        return value.reveal() if isinstance(value, Secret) else str(value or "")

    # ---- signed calls -----------------------------------------------------------------------------

    async def time_delta(self) -> int:
        """Server time minus local time, from ``GET /auth/time`` (unsigned), fetched once."""
        if self._delta is None:
            _, _, body = await self.client.request("GET", "/auth/time")
            try:
                server = int(orjson.loads(body))
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                raise ApiError(200, "/auth/time", "not a unix timestamp", provider=self.name) from exc
            self._delta = server - int(self._wall())
        return self._delta

    def signed_headers(self, method: str, url: str, body: str, timestamp: int) -> dict[str, str | Secret]:
        signature = ovh_signature(
            self._secret("application_secret"), self._secret("consumer_key"), method, url, body, timestamp
        )
        return {
            "X-Ovh-Application": Secret(self.credential()),
            "X-Ovh-Consumer": Secret(self._secret("consumer_key")),
            "X-Ovh-Timestamp": str(timestamp),
            # plain str: a new value per request (registering each as a Secret would grow the
            # redactor forever); it is bound to its URL and timestamp, and never logged
            "X-Ovh-Signature": signature,
        }

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """A signed GET of ``path`` (cached by URL); the URL is built here because it is signed."""
        url = self.client.url_for(quote(path, safe="/"))
        if params:
            url = f"{url}?{urlencode(params)}"
        timestamp = int(self._wall()) + await self.time_delta()
        headers = self.signed_headers("GET", url, "", timestamp)
        _, _, body = await self.client.request("GET", url, headers=headers, cache=True)
        try:
            return orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError as exc:
            raise ApiError(200, path, "invalid JSON in response", provider=self.name) from exc

    async def _gather(self, calls: list[Awaitable[T]]) -> list[T]:
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(call: Awaitable[T]) -> T:
            async with gate:
                return await call

        return list(await asyncio.gather(*(one(c) for c in calls)))

    # ---- inventory --------------------------------------------------------------------------------

    async def projects(self) -> list[str]:
        if self.only_projects is not None:
            return self.only_projects
        data = await self.get("/cloud/project")
        return [str(p) for p in data or []]

    async def instances(self) -> list[Instance]:
        per_project = await self._gather([self._project_instances(sn) for sn in await self.projects()])
        return [inst for group in per_project for inst in group]

    async def _project_instances(self, sn: str) -> list[Instance]:
        items, flavors = await asyncio.gather(
            self.get(f"/cloud/project/{sn}/instance"), self.get(f"/cloud/project/{sn}/flavor")
        )
        by_id = {str(f.get("id")): f for f in flavors or [] if isinstance(f, dict)}
        return [self._instance(sn, item, by_id) for item in items or [] if isinstance(item, dict)]

    def _instance(
        self, sn: str, item: Mapping[str, Any], flavors: Mapping[str, Mapping[str, Any]]
    ) -> Instance:
        flavor = flavors.get(str(item.get("flavorId")), {})
        plan = str(item.get("planCode") or "")
        flavor_name = str(flavor.get("name") or plan.split(".", 1)[0])
        gpu_model, gpu_count = flavor_gpus(flavor_name, self.gpu_overrides)
        raw = str(item.get("status") or "")
        monthly = bool(item.get("monthlyBilling")) or ".monthly" in plan
        labels = {
            "project": sn,
            "status_raw": raw,
            "plan_code": plan,
            "billing": "monthly" if monthly else "hourly",
        }
        if item.get("flavorId"):
            labels["flavor_id"] = str(item["flavorId"])
        price = self.prices_by_flavor.get(flavor_name)
        vcpus, ram = flavor.get("vcpus"), flavor.get("ram")
        return self.instance(
            str(item.get("id", "")),
            str(item.get("name", "")),
            region=str(item.get("region") or ""),
            instance_type=flavor_name,
            status=normalize_status(raw, STATUS_MAP),
            gpu_model=gpu_model,
            gpu_count=gpu_count,
            vcpus=vcpus if isinstance(vcpus, int) else None,
            memory_mib=ram if isinstance(ram, int) else None,
            hourly_price=price,
            currency=self.currency,
            price_source=PriceSource.CONFIG if price is not None else PriceSource.NONE,
            created_at=parse_time(item.get("created")),
            host=str(item.get("name", "")),
            ip=_public_ipv4(item.get("ipAddresses")),
            labels=labels,
        )

    # ---- billing ----------------------------------------------------------------------------------

    async def billing(self) -> list[BillingLine]:
        """Invoice lines of bills since ``billing_days`` ago, plus each project's current usage."""
        me = await self.get("/me")
        currency = str(((me or {}).get("currency") or {}).get("code") or self.currency)
        since = (datetime.now(UTC) - timedelta(days=self.billing_days)).date().isoformat()
        bill_ids = [str(b) for b in await self.get("/me/bill", {"date.from": since}) or []]
        bills = await self._gather([self._bill_lines(bid) for bid in bill_ids])
        usage = await self._gather([self._usage_lines(sn, currency) for sn in await self.projects()])
        return [line for group in bills + usage for line in group]

    async def _bill_lines(self, bill_id: str) -> list[BillingLine]:
        bill, detail_ids = await asyncio.gather(
            self.get(f"/me/bill/{bill_id}"), self.get(f"/me/bill/{bill_id}/details")
        )
        bill_date = parse_time((bill or {}).get("date")) or datetime.now(UTC)
        details = await self._gather(
            [self.get(f"/me/bill/{bill_id}/details/{did}") for did in detail_ids or []]
        )
        lines = []
        for d in details:
            if not isinstance(d, dict):
                continue
            start = parse_time(d.get("periodStart")) or bill_date
            end_day = parse_time(d.get("periodEnd"))
            lines.append(
                self._line(
                    f"bill:{bill_id}:{d.get('billDetailId')}",
                    BillingKind.INVOICE_ITEM,
                    start,
                    end_day + timedelta(days=1) if end_day else bill_date,  # periodEnd is an inclusive date
                    d.get("totalPrice"),
                    description=str(d.get("description") or ""),
                    resource_id=str(d.get("domain") or ""),
                    note=f"bill {bill_id}",
                )
            )
        if not lines and isinstance(bill, dict):  # a bill without detail lines: its pre-tax total
            lines.append(
                self._line(
                    f"bill:{bill_id}",
                    BillingKind.INVOICE_ITEM,
                    bill_date,
                    bill_date,
                    bill.get("priceWithoutTax"),
                    description=f"bill {bill_id}",
                )
            )
        return [line for line in lines if line is not None]

    def _line(
        self, line_id: str, kind: BillingKind, start: datetime, end: datetime, price: Any, **text: str
    ) -> BillingLine | None:
        price = price if isinstance(price, Mapping) else {}
        amount = parse_money(price.get("value"))
        if amount is None:
            return None
        currency = str(price.get("currencyCode") or self.currency)
        return BillingLine(self.name, self.account.id, line_id, kind, start, end, amount, currency, **text)

    async def _usage_lines(self, sn: str, currency: str) -> list[BillingLine]:
        usage = await self.get(f"/cloud/project/{sn}/usage/current")
        if not isinstance(usage, dict):
            return []
        period = usage.get("period") or {}
        start = parse_time(period.get("from")) or datetime.now(UTC)
        end = parse_time(usage.get("lastUpdate")) or parse_time(period.get("to")) or start
        lines = []
        for mode in ("hourly", "monthly"):
            for entry in ((usage.get(f"{mode}Usage") or {}).get("instance")) or []:
                reference, region = str(entry.get("reference", "")), str(entry.get("region", ""))
                for d in entry.get("details") or []:
                    iid = str(d.get("instanceId", ""))
                    qty = d.get("quantity") or {}
                    qty_text = (
                        f" {qty.get('value')} {qty.get('unit')}" if isinstance(qty, Mapping) and qty else ""
                    )
                    line = self._line(
                        f"usage:{sn}:{start.date().isoformat()}:{mode}:{iid}:{reference}",
                        BillingKind.USAGE,
                        start,
                        end,
                        {"value": d.get("totalPrice"), "currencyCode": currency},
                        description=f"{reference} {region} {mode}{qty_text}",
                        resource_id=iid,
                        note=f"project {sn} current usage",
                    )
                    if line is not None:
                        lines.append(line)
        return lines

    # ---- connection test ----------------------------------------------------------------------------

    async def check(self) -> list[CheckResult]:
        results = []
        for name, path in (("auth_time", "/auth/time"), ("me", "/me"), ("cloud_projects", "/cloud/project")):
            started = time.perf_counter()
            try:
                if name == "auth_time":
                    self._delta = None
                    await self.time_delta()
                else:
                    self.client.clear_cache()
                    await self.get(path)
            except ApiError as exc:
                results.append(CheckResult(name, False, exc.status, _ms(started), str(exc)))
                continue
            results.append(CheckResult(name, True, 200, _ms(started), "ok"))
        return results


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _public_ipv4(addresses: object) -> str:
    for addr in addresses if isinstance(addresses, list) else []:
        if isinstance(addr, Mapping) and addr.get("version") == 4 and addr.get("type", "public") == "public":
            return str(addr.get("ip", ""))
    return ""


def _gpu_overrides(value: object) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    if isinstance(value, Mapping):
        for key, spec in value.items():
            if (
                isinstance(spec, Mapping)
                and isinstance(spec.get("model"), str)
                and isinstance(spec.get("count"), int)
            ):
                out[str(key)] = (spec["model"], spec["count"])
    return out
