"""Linode (Akamai Cloud) API v4: instances priced from ``/linode/types``, and real money from ``/account``.

Linode is one of the few providers with billed amounts in its API: ``balance`` and
``balance_uninvoiced`` on ``/account`` plus invoice items. Instances carry no price, so the
hourly price is joined from the types catalog, taking a ``region_prices`` override when the
instance's region has one (Jakarta and São Paulo cost more than the base price).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import structlog

from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, month_start
from multicloud_collector.providers.http import paginate_pages
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

MIN_PAGE_SIZE, MAX_PAGE_SIZE = 25, 500
DEFAULT_PAGE_SIZE = 500  # fewest calls: paginated GETs have their own, smaller rate limit
DEFAULT_INVOICE_DAYS = 93
STATUS = {
    "running": "running",
    "offline": "stopped",
    "stopped": "stopped",
    "billing_suspension": "stopped",
    "booting": "pending",
    "rebooting": "pending",
    "shutting_down": "pending",
    "provisioning": "pending",
    "busy": "pending",
    "migrating": "pending",
    "rebuilding": "pending",
    "cloning": "pending",
    "restoring": "pending",
    "resizing": "pending",
    "deleting": "terminated",
}
# GPU plan labels read "Dedicated 32GB + RTX6000 GPU x1"; the type has the count but not the model.
_GPU_LABEL = re.compile(r"\+\s*(?P<model>.+?)\s+GPU\s*x\s*(?P<count>\d+)", re.IGNORECASE)
_PRIVATE_V4 = re.compile(r"^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)")


def _last_page(data: Any, page: int) -> bool:
    pages = data.get("pages") if isinstance(data, dict) else None
    return not isinstance(pages, int) or page >= pages


def gpu_model_from_label(label: str) -> str:
    """The GPU model in a Linode GPU plan label (``"RTX6000"`` from ``"... + RTX6000 GPU x1"``), or ""."""
    match = _GPU_LABEL.search(label)
    return match.group("model") if match else ""


def hourly_price_for(type_: Mapping[str, Any], region: str) -> Decimal | None:
    """The type's hourly price in ``region``: a ``region_prices`` entry wins over the base ``price``."""
    for entry in type_.get("region_prices") or ():
        if isinstance(entry, dict) and entry.get("id") == region:
            return parse_money(entry.get("hourly"))
    price = type_.get("price")
    return parse_money(price.get("hourly")) if isinstance(price, dict) else None


class LinodeAdapter(ProviderAdapter):
    """Inventory, prices and billing of one Linode account (one personal access token)."""

    name: ClassVar[str] = "linode"
    display_name: ClassVar[str] = "Linode (Akamai Cloud)"
    default_base_url: ClassVar[str] = "https://api.linode.com/v4"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing", "prices"})
    api_keys: ClassVar[frozenset[str]] = frozenset({"page_size", "invoice_days"})
    credential_keys: ClassVar[tuple[str, ...]] = ("token", "api_key")
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (
        ("account", "/account"),
        ("instances", "/linode/instances"),
        ("types", "/linode/types"),
    )

    def now(self) -> datetime:
        """The current time (UTC); tests replace it to get fixed billing periods."""
        return datetime.now(UTC)

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        size = api.get("page_size")
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or not MIN_PAGE_SIZE <= size <= MAX_PAGE_SIZE
        ):
            problems.append(
                Problem(f"{path}.page_size", f"must be an integer from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}")
            )
        days = api.get("invoice_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
            problems.append(Problem(f"{path}.invoice_days", "must be an integer >= 0"))
        return problems

    @property
    def page_size(self) -> int:
        size = self.api.get("page_size")
        return size if isinstance(size, int) and MIN_PAGE_SIZE <= size <= MAX_PAGE_SIZE else DEFAULT_PAGE_SIZE

    async def _list(self, path: str) -> list[Any]:
        return await paginate_pages(
            self.client,
            path,
            items_key="data",
            size_param="page_size",
            size=self.page_size,
            last_page=_last_page,
        )

    async def _types(self) -> dict[str, dict[str, Any]]:
        return {str(t.get("id")): t for t in await self._list("/linode/types") if isinstance(t, dict)}

    # ---- inventory --------------------------------------------------------------------------------

    async def instances(self) -> list[Instance]:
        types = await self._types()
        raw = await self._list("/linode/instances")
        return [self._instance(item, types) for item in raw if isinstance(item, dict)]

    def _instance(self, item: Mapping[str, Any], types: Mapping[str, Mapping[str, Any]]) -> Instance:
        type_id = str(item.get("type") or "")
        region = str(item.get("region") or "")
        type_ = types.get(type_id, {})
        specs = item.get("specs")
        specs = specs if isinstance(specs, dict) else {}
        gpu_count = int(specs.get("gpus") or type_.get("gpus") or 0)
        price = hourly_price_for(type_, region) if type_ else None
        status_raw = str(item.get("status") or "")
        tags = item.get("tags") or []
        labels = {"status_raw": status_raw, "type_label": str(type_.get("label") or "")}
        if tags:
            labels["tags"] = ",".join(str(t) for t in tags)
        if item.get("group"):
            labels["group"] = str(item["group"])
        if item.get("lke_cluster_id"):
            labels["lke_cluster_id"] = str(item["lke_cluster_id"])
        public = [ip for ip in item.get("ipv4") or [] if isinstance(ip, str) and not _PRIVATE_V4.match(ip)]
        label = str(item.get("label") or "")
        return self.instance(
            str(item.get("id")),
            label,
            region=region,
            instance_type=type_id,
            status=normalize_status(status_raw, STATUS),
            gpu_model=gpu_model_from_label(str(type_.get("label") or "")) if gpu_count else "",
            gpu_count=gpu_count,
            vcpus=specs.get("vcpus"),
            memory_mib=specs.get("memory"),
            hourly_price=price,
            currency="USD",
            price_source=PriceSource.CATALOG if price is not None else PriceSource.NONE,
            created_at=parse_time(item.get("created")),
            host=label,
            ip=public[0] if public else "",
            labels=labels,
        )

    # ---- prices -----------------------------------------------------------------------------------

    async def prices(self) -> list[PriceEntry]:
        out: list[PriceEntry] = []
        for type_id, t in (await self._types()).items():
            gpus = int(t.get("gpus") or 0)
            common: dict[str, Any] = {
                "gpu_model": gpu_model_from_label(str(t.get("label") or "")) if gpus else "",
                "gpu_count": gpus,
                "vcpus": t.get("vcpus"),
                "memory_mib": t.get("memory"),
            }
            base = t.get("price")
            base = base if isinstance(base, dict) else {}
            out.append(
                PriceEntry(
                    self.name,
                    type_id,
                    "",
                    parse_money(base.get("hourly")),
                    parse_money(base.get("monthly")),
                    **common,
                )
            )
            for rp in t.get("region_prices") or ():
                if isinstance(rp, dict):
                    out.append(
                        PriceEntry(
                            self.name,
                            type_id,
                            str(rp.get("id") or ""),
                            parse_money(rp.get("hourly")),
                            parse_money(rp.get("monthly")),
                            **common,
                        )
                    )
        return out

    # ---- billing ----------------------------------------------------------------------------------

    async def billing(self) -> list[BillingLine]:
        now = self.now()
        month = month_start(now)
        account = await self.client.get_json("/account")
        lines: list[BillingLine] = []
        if isinstance(account, dict):
            balance = parse_money(account.get("balance"))
            if balance is not None:
                lines.append(
                    self.billing_line(
                        "balance",
                        BillingKind.BALANCE,
                        now,
                        now,
                        balance,
                        "account balance (positive: amount owed)",
                    )
                )
            pending = parse_money(account.get("balance_uninvoiced"))
            if pending is not None:
                lines.append(
                    self.billing_line(
                        f"uninvoiced:{month:%Y-%m}",
                        BillingKind.PENDING,
                        month,
                        now,
                        pending,
                        "uninvoiced charges this month",
                        note="Linode's current estimated invoice; transfer charges not included",
                    )
                )
        lines += await self._invoice_lines(now)
        return lines

    async def _invoice_lines(self, now: datetime) -> list[BillingLine]:
        days = self.api.get("invoice_days")
        cutoff = now - timedelta(days=days if isinstance(days, int) else DEFAULT_INVOICE_DAYS)
        lines: list[BillingLine] = []
        for invoice in await self._list("/account/invoices"):
            if not isinstance(invoice, dict):
                continue
            date = parse_time(invoice.get("date"))
            if date is None or date < cutoff:
                continue
            invoice_id = invoice.get("id")
            items = await self._list(f"/account/invoices/{invoice_id}/items")
            for idx, item in enumerate(items):
                if not isinstance(item, dict):
                    continue
                amount = parse_money(item.get("total"))
                if amount is None:
                    amount = parse_money(item.get("amount"))
                if amount is None:
                    log.warning("linode_invoice_item_without_amount", invoice=invoice_id, index=idx)
                    continue
                start = parse_time(item.get("from")) or date
                end = parse_time(item.get("to")) or date
                region = item.get("region")
                desc = str(item.get("label") or "")
                qty = item.get("quantity")
                lines.append(
                    self.billing_line(
                        f"invoice:{invoice_id}:{idx}",
                        BillingKind.INVOICE_ITEM,
                        start,
                        end,
                        amount,
                        f"{desc} [{region}]" if region else desc,
                        note=f"invoice {invoice_id}; {qty} x {item.get('unit_price')} incl. tax",
                    )
                )
        return lines
