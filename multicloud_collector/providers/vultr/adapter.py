"""Vultr API v2: ``/instances`` + ``/bare-metals`` joined to ``/plans`` prices; ``/account`` and invoices.

Vultr instances carry no price and no GPU fields, so each is joined to its plan (``/plans``,
``/plans-metal``: monthly USD only). The hourly price is ``monthly_cost / hours_per_month``
(730 by default, configurable) and marked ``catalog``. Money arrives as JSON floats and is parsed
through ``str`` into ``Decimal``. Pagination is the body cursor ``meta.links.next``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import structlog

from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, month_start, stable_line_id
from multicloud_collector.providers.http import ApiError, paginate_cursor
from multicloud_collector.providers.money import parse_money, parse_time
from multicloud_collector.providers.records import (
    BillingKind,
    BillingLine,
    Instance,
    PriceEntry,
    PriceSource,
    normalize_status,
)

log = structlog.get_logger(__name__)

DEFAULT_HOURS_PER_MONTH = 730
PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
STATUS = {"active": "running", "pending": "pending", "resizing": "pending", "suspended": "stopped"}
POWER = {"running": "running", "stopped": "stopped"}


def _next_cursor(data: Any) -> str | None:
    links = ((data or {}).get("meta") or {}).get("links") or {}
    nxt = links.get("next")
    return str(nxt) if nxt else None


def _int(value: Any) -> int | None:
    """Vultr sends RAM as an int (instances) or a string such as "32768 MB" (bare metal)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    head = str(value).strip().split(" ")[0]
    return int(head) if head.isdigit() else None


class VultrAdapter(ProviderAdapter):
    """Vultr (https://api.vultr.com/v2), bearer API key."""

    name = "vultr"
    display_name = "Vultr"
    default_base_url = "https://api.vultr.com/v2"
    capabilities = frozenset({"inventory", "billing", "prices"})
    credential_keys = ("api_key", "token")
    api_keys = frozenset({"hours_per_month", "bare_metal", "invoices", "page_size"})
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (
        ("account", "/account"),
        ("instances", "/instances?per_page=1"),
        ("billing", "/billing/invoices?per_page=1"),
    )

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        hours = api.get("hours_per_month")
        if hours is not None and (
            isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 744
        ):
            problems.append(Problem(f"{path}.hours_per_month", "must be an integer 1-744"))
        for key in ("bare_metal",):
            if key in api and not isinstance(api[key], bool):
                problems.append(Problem(f"{path}.{key}", "expected true or false"))
        invoices = api.get("invoices")
        if invoices is not None and (
            isinstance(invoices, bool) or not isinstance(invoices, int) or invoices < 0
        ):
            problems.append(
                Problem(f"{path}.invoices", "must be an integer >= 0 (latest invoices to itemize)")
            )
        size = api.get("page_size")
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE
        ):
            problems.append(Problem(f"{path}.page_size", f"must be an integer 1-{MAX_PAGE_SIZE}"))
        return problems

    @property
    def hours_per_month(self) -> Decimal:
        value = self.api.get("hours_per_month")
        return Decimal(
            value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_HOURS_PER_MONTH
        )

    @property
    def page_size(self) -> int:
        value = self.api.get("page_size")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else PAGE_SIZE

    async def _list(self, path: str, items_key: str) -> list[Any]:
        return await paginate_cursor(
            self.client,
            path,
            items_key=items_key,
            params={"per_page": self.page_size},
            next_cursor=_next_cursor,
        )

    # ---- prices -------------------------------------------------------------------------------

    async def _plans(self) -> dict[str, dict[str, Any]]:
        plans = await self._list("/plans", "plans")
        if self.api.get("bare_metal", True) is not False:
            plans += await self._list("/plans-metal", "plans_metal")
        return {str(p.get("id")): p for p in plans if isinstance(p, dict)}

    def _hourly(self, plan: Mapping[str, Any]) -> Decimal | None:
        monthly = parse_money(plan.get("monthly_cost"))
        return None if monthly is None else monthly / self.hours_per_month

    async def prices(self) -> list[PriceEntry]:
        out = []
        for plan_id, plan in (await self._plans()).items():
            gpu = str(plan.get("gpu_type") or "")
            for region in plan.get("locations") or [""]:
                out.append(
                    PriceEntry(
                        provider=self.name,
                        instance_type=plan_id,
                        region=str(region),
                        hourly_price=self._hourly(plan),
                        monthly_price=parse_money(plan.get("monthly_cost")),
                        gpu_model=gpu,
                        gpu_count=1 if gpu else 0,
                        vcpus=_int(plan.get("vcpu_count") or plan.get("cpu_count")),
                        memory_mib=_int(plan.get("ram")),
                    )
                )
        return out

    # ---- inventory ----------------------------------------------------------------------------

    async def instances(self) -> list[Instance]:
        plans = await self._plans()
        items = [(i, "instance") for i in await self._list("/instances", "instances")]
        if self.api.get("bare_metal", True) is not False:
            items += [(i, "bare_metal") for i in await self._list("/bare-metals", "bare_metals")]
        return [self._instance(item, kind, plans) for item, kind in items if isinstance(item, dict)]

    def _instance(
        self, item: Mapping[str, Any], kind: str, plans: Mapping[str, Mapping[str, Any]]
    ) -> Instance:
        plan_id = str(item.get("plan") or "")
        plan = plans.get(plan_id, {})
        status_raw = str(item.get("status") or "")
        power = str(item.get("power_status") or "")
        status = normalize_status(status_raw, STATUS)
        if status == "running" and power:
            status = normalize_status(power, POWER)
        gpu = str(plan.get("gpu_type") or "")
        price = self._hourly(plan) if plan else None
        labels = {"status_raw": status_raw, "kind": kind}
        if power:
            labels["power_status"] = power
        if item.get("label"):
            labels["label"] = str(item["label"])
        if plan.get("gpu_vram_gb") is not None:
            labels["gpu_vram_gb"] = str(plan["gpu_vram_gb"])
        tags = item.get("tags") or []
        if tags:
            labels["tags"] = ",".join(str(t) for t in tags)
        name = str(item.get("label") or item.get("hostname") or item.get("id"))
        return self.instance(
            str(item.get("id")),
            name,
            region=str(item.get("region") or ""),
            instance_type=plan_id,
            status=status,
            gpu_model=gpu,
            gpu_count=1 if gpu else 0,
            vcpus=_int(item.get("vcpu_count") or item.get("cpu_count")),
            memory_mib=_int(item.get("ram")),
            hourly_price=price,
            price_source=PriceSource.CATALOG if price is not None else PriceSource.NONE,
            created_at=parse_time(item.get("date_created")),
            host=str(item.get("hostname") or item.get("label") or ""),
            ip=str(item.get("main_ip") or ""),
            labels=labels,
        )

    # ---- billing ------------------------------------------------------------------------------

    async def billing(self) -> list[BillingLine]:
        now = datetime.now(UTC)
        start = month_start(now)
        account = ((await self.client.get_json("/account")) or {}).get("account") or {}
        lines: list[BillingLine] = []
        balance = parse_money(account.get("balance"))
        if balance is not None:
            lines.append(
                self.billing_line(
                    f"balance:{now.date().isoformat()}",
                    BillingKind.BALANCE,
                    now,
                    now,
                    balance,
                    "account balance",
                )
            )
        pending = parse_money(account.get("pending_charges"))
        if pending is not None:
            lines.append(
                self.billing_line(
                    f"pending:{start:%Y-%m}",
                    BillingKind.PENDING,
                    start,
                    now,
                    pending,
                    "unbilled charges this month",
                )
            )
        lines += await self._pending_items(start, now)
        lines += await self._invoice_items()
        return lines

    def _item_lines(
        self, items: list[Any], prefix: str, kind: BillingKind, start: datetime, end: datetime
    ) -> list[BillingLine]:
        out = []
        for n, item in enumerate(i for i in items if isinstance(i, dict)):
            amount = parse_money(item.get("total"))
            if amount is None:
                continue
            begin = parse_time(item.get("start_date")) or start
            finish = parse_time(item.get("end_date")) or end
            desc = str(item.get("description") or item.get("product") or "")
            line_id = stable_line_id(prefix, desc, item.get("product"), item.get("start_date"), n)
            out.append(
                self.billing_line(line_id, kind, begin, finish, amount, desc, str(item.get("product") or ""))
            )
        return out

    async def _pending_items(self, start: datetime, now: datetime) -> list[BillingLine]:
        try:
            data = await self.client.get_json("/billing/pending-charges")
        except ApiError as exc:
            if exc.status != 404:  # older API deployments lack this route: the total is still there
                raise
            log.info("vultr_pending_charges_unavailable", account=self.account.id)
            return []
        items = (data or {}).get("pending_charges") or []
        return self._item_lines(items, f"pending:{start:%Y-%m}", BillingKind.PENDING, start, now)

    async def _invoice_items(self) -> list[BillingLine]:
        wanted = self.api.get("invoices", 1)
        count = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else 1
        if count <= 0:
            return []
        data = await self.client.get_json("/billing/invoices", {"per_page": count})
        out: list[BillingLine] = []
        for invoice in ((data or {}).get("billing_invoices") or [])[:count]:
            invoice_id = str(invoice.get("id"))
            when = parse_time(invoice.get("date")) or datetime.now(UTC)
            items = await self._list(f"/billing/invoices/{invoice_id}/items", "invoice_items")
            out += self._item_lines(
                items, f"invoice:{invoice_id}", BillingKind.INVOICE_ITEM, month_start(when), when
            )
        return out
