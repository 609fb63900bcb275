"""Lambda Cloud API v1: GPU instances with their embedded list price, and cost from *observed* uptime.

Lambda's API has no billing endpoint and its instances carry no creation time, so the only
honest cost figure is list price (``price_cents_per_hour``, integer US cents) x the running time
this adapter has seen itself: each inventory call is an observation, and the time between two
observations that both saw an instance running counts as uptime. The first observation of an
instance therefore contributes nothing; a collector that runs continuously converges on the
real figure within one inventory interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from multicloud_collector.providers.base import ProviderAdapter, estimate_lines, month_start
from multicloud_collector.providers.lambda_cloud.uptime import ObservedUptime
from multicloud_collector.providers.money import parse_money
from multicloud_collector.providers.records import (
    BillingLine,
    Instance,
    PriceEntry,
    PriceSource,
    normalize_status,
)

STATUS = {
    "active": "running",
    "unhealthy": "running",  # still allocated and billed
    "booting": "pending",
    "terminating": "terminated",
    "terminated": "terminated",
    "preempted": "terminated",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def instance_type_price(itype: Mapping[str, Any]) -> Decimal | None:
    """Dollars per hour from an instance type's ``price_cents_per_hour`` (integer cents)."""
    return parse_money(itype.get("price_cents_per_hour"), cents=True)


class LambdaAdapter(ProviderAdapter):
    """Instances and estimated cost of one Lambda Cloud account (one API key)."""

    name: ClassVar[str] = "lambda"
    display_name: ClassVar[str] = "Lambda Cloud"
    default_base_url: ClassVar[str] = "https://cloud.lambda.ai/api/v1"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing", "prices"})
    api_keys: ClassVar[frozenset[str]] = frozenset()
    credential_keys: ClassVar[tuple[str, ...]] = ("api_key", "token")
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (
        ("instances", "/instances"),
        ("instance_types", "/instance-types"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uptime = ObservedUptime()

    def now(self) -> datetime:
        """The current time (UTC); tests replace it to simulate observations over time."""
        return datetime.now(UTC)

    async def _types(self) -> dict[str, dict[str, Any]]:
        data = _dict(await self.client.get_json("/instance-types")).get("data")
        return {str(k): _dict(_dict(v).get("instance_type")) for k, v in _dict(data).items()}

    # ---- inventory --------------------------------------------------------------------------------

    async def instances(self) -> list[Instance]:
        data = await self.client.get_json("/instances")
        raw = _dict(data).get("data")
        items = [i for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []
        catalog: dict[str, dict[str, Any]] | None = None
        out: list[Instance] = []
        for item in items:
            itype = _dict(item.get("instance_type"))
            source = PriceSource.API
            if instance_type_price(itype) is None:  # not embedded: fall back to the catalog
                catalog = catalog if catalog is not None else await self._types()
                itype = {**catalog.get(str(itype.get("name") or ""), {}), **itype}
                source = PriceSource.CATALOG
            out.append(self._instance(item, itype, source))
        now = self.now()
        self.uptime.observe((i.instance_id for i in out if i.status == "running"), now, month_start(now))
        return out

    def _instance(self, item: Mapping[str, Any], itype: Mapping[str, Any], source: PriceSource) -> Instance:
        specs = _dict(itype.get("specs"))
        price = instance_type_price(itype)
        gpus = int(specs.get("gpus") or 0)
        memory = specs.get("memory_gib")
        status_raw = str(item.get("status") or "")
        labels = {
            str(t.get("key")): str(t.get("value")) for t in item.get("tags") or () if isinstance(t, dict)
        }
        labels["status_raw"] = status_raw
        if item.get("private_ip"):
            labels["private_ip"] = str(item["private_ip"])
        return self.instance(
            str(item.get("id") or ""),
            str(item.get("name") or ""),
            region=str(_dict(item.get("region")).get("name") or ""),
            instance_type=str(itype.get("name") or ""),
            status=normalize_status(status_raw, STATUS),
            gpu_model=str(itype.get("gpu_description") or "") if gpus else "",
            gpu_count=gpus,
            vcpus=specs.get("vcpus"),
            memory_mib=int(memory) * 1024 if isinstance(memory, int | float) else None,
            hourly_price=price,
            currency="USD",
            price_source=source if price is not None else PriceSource.NONE,
            host=str(item.get("hostname") or ""),
            ip=str(item.get("ip") or ""),
            labels=labels,
        )

    # ---- prices and estimates -------------------------------------------------------------------

    async def prices(self) -> list[PriceEntry]:
        out: list[PriceEntry] = []
        for name, itype in (await self._types()).items():
            specs = _dict(itype.get("specs"))
            gpus = int(specs.get("gpus") or 0)
            memory = specs.get("memory_gib")
            out.append(
                PriceEntry(
                    self.name,
                    name,
                    hourly_price=instance_type_price(itype),
                    gpu_model=str(itype.get("gpu_description") or "") if gpus else "",
                    gpu_count=gpus,
                    vcpus=specs.get("vcpus"),
                    memory_mib=int(memory) * 1024 if isinstance(memory, int | float) else None,
                )
            )
        return out

    async def billing(self) -> list[BillingLine]:
        """Estimates for this month: list price x uptime observed by this collector (no billing API)."""
        instances = await self.instances()
        now = self.now()
        return estimate_lines(
            instances,
            provider=self.name,
            account=self.account.id,
            now=now,
            since=month_start(now),
            uptime=self.uptime.seconds(),
        )
