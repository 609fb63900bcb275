"""DigitalOcean API v2: ``/droplets`` (plus ``?type=gpus``), balance, invoice preview and invoice items.

The plain droplet list leaves GPU Droplets out; they are only listed with ``type=gpus``, so the
adapter asks twice and merges by id. Hourly prices come with each droplet (``size.price_hourly``,
a float: parsed via ``str`` into ``Decimal``); billing amounts are strings. Pagination is by page
number until ``links.pages.next`` is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, month_start, stable_line_id
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

PAGE_SIZE = 200  # the API maximum
STATUS = {"new": "pending", "active": "running", "off": "stopped", "archive": "terminated"}


def _last_page(data: Any, page: int) -> bool:
    pages = ((data or {}).get("links") or {}).get("pages") or {}
    return not pages.get("next")


def _month(period: str) -> tuple[datetime, datetime] | None:
    """``"2024-05"`` → (May 1st, June 1st) in UTC."""
    try:
        start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


class DigitalOceanAdapter(ProviderAdapter):
    """DigitalOcean (https://api.digitalocean.com/v2), bearer personal access token."""

    name = "digitalocean"
    display_name = "DigitalOcean"
    default_base_url = "https://api.digitalocean.com/v2"
    capabilities = frozenset({"inventory", "billing", "prices"})
    credential_keys = ("token", "api_key")
    api_keys = frozenset({"gpu_droplets", "invoices", "tag_name"})
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (
        ("account", "/account"),
        ("droplets", "/droplets?per_page=1"),
        ("billing", "/customers/my/balance"),
    )

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        if "gpu_droplets" in api and not isinstance(api["gpu_droplets"], bool):
            problems.append(Problem(f"{path}.gpu_droplets", "expected true or false"))
        invoices = api.get("invoices")
        if invoices is not None and (
            isinstance(invoices, bool) or not isinstance(invoices, int) or invoices < 0
        ):
            problems.append(
                Problem(f"{path}.invoices", "must be an integer >= 0 (latest invoices to itemize)")
            )
        tag = api.get("tag_name")
        if tag is not None and (not isinstance(tag, str) or not tag):
            problems.append(Problem(f"{path}.tag_name", "expected a non-empty string"))
        return problems

    async def _pages(
        self, path: str, items_key: str, params: Mapping[str, str | int] | None = None
    ) -> list[Any]:
        return await paginate_pages(
            self.client, path, items_key=items_key, size=PAGE_SIZE, last_page=_last_page, params=params
        )

    # ---- inventory ----------------------------------------------------------------------------

    async def instances(self) -> list[Instance]:
        tag = self.api.get("tag_name")
        droplets = await self._pages("/droplets", "droplets", {"tag_name": str(tag)} if tag else None)
        if self.api.get("gpu_droplets", True) is not False and not tag:  # the API refuses type + tag_name
            droplets += await self._pages("/droplets", "droplets", {"type": "gpus"})
        seen: set[str] = set()
        out = []
        for d in droplets:
            if not isinstance(d, dict) or str(d.get("id")) in seen:
                continue
            seen.add(str(d.get("id")))
            out.append(self._instance(d))
        return out

    def _instance(self, d: Mapping[str, Any]) -> Instance:
        size = d.get("size") or {}
        gpu = d.get("gpu_info") or size.get("gpu_info") or {}
        status_raw = str(d.get("status") or "")
        price = parse_money(size.get("price_hourly"))
        labels = {"status_raw": status_raw}
        if d.get("tags"):
            labels["tags"] = ",".join(str(t) for t in d["tags"])
        vram = gpu.get("vram") or {}
        if vram.get("amount") is not None:
            labels["gpu_vram"] = f"{vram['amount']} {vram.get('unit', '')}".strip()
        networks = (d.get("networks") or {}).get("v4") or []
        public = [n.get("ip_address") for n in networks if n.get("type") == "public"]
        private = [n.get("ip_address") for n in networks if n.get("type") == "private"]
        if private:
            labels["private_ip"] = str(private[0])
        return self.instance(
            str(d.get("id")),
            str(d.get("name") or d.get("id")),
            region=str((d.get("region") or {}).get("slug") or ""),
            instance_type=str(d.get("size_slug") or size.get("slug") or ""),
            status=normalize_status(status_raw, STATUS),
            gpu_model=str(gpu.get("model") or ""),
            gpu_count=int(gpu.get("count") or 0),
            vcpus=d.get("vcpus"),
            memory_mib=d.get("memory"),
            hourly_price=price,
            price_source=PriceSource.API if price is not None else PriceSource.NONE,
            created_at=parse_time(d.get("created_at")),
            host=str(d.get("name") or ""),
            ip=str(public[0]) if public else "",
            labels=labels,
        )

    async def prices(self) -> list[PriceEntry]:
        out = []
        for s in await self._pages("/sizes", "sizes"):
            gpu = s.get("gpu_info") or {}
            for region in s.get("regions") or [""]:
                out.append(
                    PriceEntry(
                        provider=self.name,
                        instance_type=str(s.get("slug")),
                        region=str(region),
                        hourly_price=parse_money(s.get("price_hourly")),
                        monthly_price=parse_money(s.get("price_monthly")),
                        gpu_model=str(gpu.get("model") or ""),
                        gpu_count=int(gpu.get("count") or 0),
                        vcpus=s.get("vcpus"),
                        memory_mib=s.get("memory"),
                    )
                )
        return out

    # ---- billing ------------------------------------------------------------------------------

    async def billing(self) -> list[BillingLine]:
        now = datetime.now(UTC)
        start = month_start(now)
        balance = (await self.client.get_json("/customers/my/balance")) or {}
        generated = parse_time(balance.get("generated_at")) or now
        lines: list[BillingLine] = []
        amount = parse_money(balance.get("account_balance"))
        if amount is not None:
            lines.append(
                self.billing_line(
                    f"balance:{generated.date().isoformat()}",
                    BillingKind.BALANCE,
                    generated,
                    generated,
                    amount,
                    "account balance",
                )
            )
        usage = parse_money(balance.get("month_to_date_usage"))
        if usage is not None:
            lines.append(
                self.billing_line(
                    f"usage:{start:%Y-%m}", BillingKind.USAGE, start, generated, usage, "month-to-date usage"
                )
            )
        invoices = (await self.client.get_json("/customers/my/invoices", {"per_page": 20})) or {}
        preview = invoices.get("invoice_preview") or {}
        preview_amount = parse_money(preview.get("amount"))
        if preview_amount is not None:
            period = _month(str(preview.get("invoice_period") or "")) or (start, now)
            updated = parse_time(preview.get("updated_at")) or now
            lines.append(
                self.billing_line(
                    f"preview:{period[0]:%Y-%m}",
                    BillingKind.PENDING,
                    period[0],
                    min(updated, period[1]),
                    preview_amount,
                    "invoice preview (month to date)",
                )
            )
        wanted = self.api.get("invoices", 1)
        count = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else 1
        for invoice in (invoices.get("invoices") or [])[: max(0, count)]:
            lines += await self._invoice_items(invoice)
        return lines

    async def _invoice_items(self, invoice: Mapping[str, Any]) -> list[BillingLine]:
        uuid = str(invoice.get("invoice_uuid"))
        fallback = _month(str(invoice.get("invoice_period") or "")) or (datetime.now(UTC), datetime.now(UTC))
        items = await self._pages(f"/customers/my/invoices/{uuid}", "invoice_items")
        out = []
        for n, item in enumerate(i for i in items if isinstance(i, dict)):
            amount = parse_money(item.get("amount"))
            if amount is None:
                continue
            resource = str(item.get("resource_uuid") or item.get("resource_id") or "")
            desc = str(item.get("description") or item.get("product") or "")
            line_id = stable_line_id(f"invoice:{uuid}", resource, desc, item.get("start_time"), n)
            out.append(
                self.billing_line(
                    line_id,
                    BillingKind.INVOICE_ITEM,
                    parse_time(item.get("start_time")) or fallback[0],
                    parse_time(item.get("end_time")) or fallback[1],
                    amount,
                    f"{item.get('product', '')}: {desc}".strip(": "),
                    resource,
                )
            )
        return out
