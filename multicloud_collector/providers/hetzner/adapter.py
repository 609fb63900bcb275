"""Hetzner Cloud API v1: servers with their per-location list prices, and cost *estimates*.

Hetzner's Cloud API has no billing, invoice or balance endpoint (a token sees one project and
nothing about money), so cost is list price x uptime. Prices come embedded in each server's
``server_type.prices`` per location, as net/gross strings in the currency ``/pricing`` names (EUR).
Hetzner Cloud sells no GPU server types; GPU hosts can be tagged with the labels ``gpu_model`` and
``gpu_count`` so their rows still link to GPU metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter
from multicloud_collector.providers.http import paginate_pages
from multicloud_collector.providers.money import parse_money, parse_time
from multicloud_collector.providers.records import (
    BillingLine,
    Instance,
    PriceEntry,
    PriceSource,
    normalize_status,
)

PER_PAGE = 50  # the maximum both official SDKs use
PRICE_BASES = ("net", "gross")
DEFAULT_CURRENCY = "EUR"
GPU_MODEL_LABEL, GPU_COUNT_LABEL = "gpu_model", "gpu_count"
STATUS = {
    "running": "running",
    "off": "stopped",
    "initializing": "pending",
    "starting": "pending",
    "stopping": "pending",
    "migrating": "pending",
    "rebuilding": "pending",
    "deleting": "terminated",
    "unknown": "unknown",
}


def _last_page(data: Any, page: int) -> bool:
    meta = data.get("meta") if isinstance(data, dict) else None
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    return not isinstance(pagination, dict) or pagination.get("next_page") is None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def location_price(prices: Any, location: str, basis: str, period: str = "price_hourly") -> Decimal | None:
    """The ``net``/``gross`` amount of ``period`` for ``location`` in a ``server_type.prices`` list."""
    for entry in prices if isinstance(prices, list) else ():
        if isinstance(entry, dict) and entry.get("location") == location:
            return parse_money(_dict(entry.get(period)).get(basis))
    return None


def _gpu_count(labels: Mapping[str, Any]) -> int:
    try:
        return max(0, int(str(labels.get(GPU_COUNT_LABEL, "0"))))
    except ValueError:
        return 0


class HetznerAdapter(ProviderAdapter):
    """Servers and estimated cost of one Hetzner Cloud project (one project API token)."""

    name: ClassVar[str] = "hetzner"
    display_name: ClassVar[str] = "Hetzner Cloud"
    default_base_url: ClassVar[str] = "https://api.hetzner.cloud/v1"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing", "prices"})
    api_keys: ClassVar[frozenset[str]] = frozenset({"price_basis", "label_selector"})
    credential_keys: ClassVar[tuple[str, ...]] = ("token", "api_key")
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (("servers", "/servers"), ("pricing", "/pricing"))

    def now(self) -> datetime:
        """The current time (UTC); tests replace it to get fixed estimate periods."""
        return datetime.now(UTC)

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        basis = api.get("price_basis")
        if basis is not None and basis not in PRICE_BASES:
            problems.append(Problem(f"{path}.price_basis", f"must be one of net, gross (got {basis!r})"))
        selector = api.get("label_selector")
        if selector is not None and not isinstance(selector, str):
            problems.append(Problem(f"{path}.label_selector", "expected a string like 'env=prod'"))
        return problems

    @property
    def price_basis(self) -> str:
        basis = self.setting("price_basis", "net")
        return basis if basis in PRICE_BASES else "net"

    async def currency(self) -> str:
        """The price currency from ``/pricing`` (cached like every GET); EUR when absent."""
        data = await self.client.get_json("/pricing")
        pricing = _dict(_dict(data).get("pricing"))
        return str(pricing.get("currency") or DEFAULT_CURRENCY)

    async def _list(self, path: str, key: str, params: Mapping[str, str | int] | None = None) -> list[Any]:
        return await paginate_pages(
            self.client, path, items_key=key, size=PER_PAGE, last_page=_last_page, params=params
        )

    # ---- inventory --------------------------------------------------------------------------------

    async def instances(self) -> list[Instance]:
        currency = await self.currency()
        selector = self.setting("label_selector")
        params = {"label_selector": selector} if selector else None
        servers = await self._list("/servers", "servers", params)
        return [self._instance(s, currency) for s in servers if isinstance(s, dict)]

    def _instance(self, server: Mapping[str, Any], currency: str) -> Instance:
        stype = _dict(server.get("server_type"))
        datacenter = _dict(server.get("datacenter"))
        location = _dict(server.get("location")) or _dict(datacenter.get("location"))
        loc_name = str(location.get("name") or "")
        price = location_price(stype.get("prices"), loc_name, self.price_basis)
        raw_labels = _dict(server.get("labels"))
        status_raw = str(server.get("status") or "")
        memory = stype.get("memory")
        labels = {str(k): str(v) for k, v in raw_labels.items()}
        labels.update(
            status_raw=status_raw,
            price_basis=self.price_basis,
            network_zone=str(location.get("network_zone") or ""),
        )
        gpu_count = _gpu_count(raw_labels)
        name = str(server.get("name") or "")
        return self.instance(
            str(server.get("id")),
            name,
            region=loc_name,
            zone=str(datacenter.get("name") or ""),
            instance_type=str(stype.get("name") or ""),
            status=normalize_status(status_raw, STATUS),
            gpu_model=str(raw_labels.get(GPU_MODEL_LABEL, "")) if gpu_count else "",
            gpu_count=gpu_count,
            vcpus=stype.get("cores"),
            memory_mib=round(float(memory) * 1024) if isinstance(memory, int | float) else None,
            hourly_price=price,
            currency=currency,
            price_source=PriceSource.API if price is not None else PriceSource.NONE,
            created_at=parse_time(server.get("created")),
            host=name,
            ip=str(_dict(_dict(server.get("public_net")).get("ipv4")).get("ip") or ""),
            labels=labels,
        )

    # ---- prices and estimates -------------------------------------------------------------------

    async def prices(self) -> list[PriceEntry]:
        currency = await self.currency()
        out: list[PriceEntry] = []
        for stype in await self._list("/server_types", "server_types"):
            if not isinstance(stype, dict):
                continue
            memory = stype.get("memory")
            for entry in stype.get("prices") or ():
                if not isinstance(entry, dict):
                    continue
                location = str(entry.get("location") or "")
                out.append(
                    PriceEntry(
                        self.name,
                        str(stype.get("name") or ""),
                        location,
                        location_price([entry], location, self.price_basis),
                        location_price([entry], location, self.price_basis, "price_monthly"),
                        currency,
                        vcpus=stype.get("cores"),
                        memory_mib=round(float(memory) * 1024) if isinstance(memory, int | float) else None,
                    )
                )
        return out

    async def billing(self) -> list[BillingLine]:
        """Estimates for this month so far: hourly list price x time running (no billing API exists)."""
        return await self.month_to_date_estimates(self.now())
