"""Paperspace API v1 (api.paperspace.com/v1): machines, account standing, and cost *estimates*.

The v1 API has no invoice or usage endpoint (``/billing/account-standing`` holds no amounts), so
cost is an hourly rate x the uptime this collector observed (machines are often started and
stopped, so creation time says nothing about running time). The rate is the user's configured
``hourly_prices`` for the machine type when given (source ``config``), else the machine's
``usageRate``, whose unit the API schema does not state; it is taken as US dollars per hour,
like the retired Core API's ``hourlyRate``, and every such instance says so in its labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import structlog

from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, estimate_lines, month_start
from multicloud_collector.providers.http import paginate_cursor
from multicloud_collector.providers.lambda_cloud.uptime import ObservedUptime
from multicloud_collector.providers.money import parse_money, parse_time
from multicloud_collector.providers.records import (
    BillingLine,
    Instance,
    PriceSource,
    normalize_status,
)

log = structlog.get_logger(__name__)

MAX_LIMIT = 120
MIB = 1024 * 1024
USAGE_RATE_NOTE = "usageRate (unit undocumented; taken as USD/hour)"
STATUS = {
    "ready": "running",
    "serviceready": "running",
    "off": "stopped",
    "starting": "pending",
    "stopping": "pending",
    "restarting": "pending",
    "provisioning": "pending",
    "upgrading": "pending",
}


def _next_page(data: Any) -> str | None:
    if not isinstance(data, dict) or not data.get("hasMore"):
        return None
    cursor = data.get("nextPage")
    return str(cursor) if cursor else None


class PaperspaceAdapter(ProviderAdapter):
    """Machines and estimated cost of one Paperspace team (one team-scoped API key)."""

    name: ClassVar[str] = "paperspace"
    display_name: ClassVar[str] = "Paperspace (DigitalOcean)"
    default_base_url: ClassVar[str] = "https://api.paperspace.com/v1"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing"})
    api_keys: ClassVar[frozenset[str]] = frozenset({"hourly_prices", "page_limit"})
    credential_keys: ClassVar[tuple[str, ...]] = ("api_key", "token")
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (
        ("machines", "/machines"),
        ("account_standing", "/billing/account-standing"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uptime = ObservedUptime()

    def now(self) -> datetime:
        """The current time (UTC); tests replace it to simulate observations over time."""
        return datetime.now(UTC)

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        prices = api.get("hourly_prices")
        if prices is not None:
            if not isinstance(prices, dict):
                problems.append(
                    Problem(f"{path}.hourly_prices", "expected a mapping of machine type to price")
                )
            else:
                for mtype, value in prices.items():
                    amount = parse_money(value) if isinstance(value, str | int | float) else None
                    if amount is None or amount < 0:
                        problems.append(
                            Problem(f"{path}.hourly_prices.{mtype}", f"expected a price >= 0, got {value!r}")
                        )
        limit = api.get("page_limit")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT
        ):
            problems.append(Problem(f"{path}.page_limit", f"must be an integer from 1 to {MAX_LIMIT}"))
        return problems

    @property
    def page_limit(self) -> int:
        limit = self.api.get("page_limit")
        return limit if isinstance(limit, int) and 1 <= limit <= MAX_LIMIT else MAX_LIMIT

    def _configured_price(self, machine_type: str) -> Any:
        prices = self.api.get("hourly_prices")
        return prices.get(machine_type) if isinstance(prices, dict) else None

    # ---- inventory --------------------------------------------------------------------------------

    async def instances(self) -> list[Instance]:
        raw = await paginate_cursor(
            self.client,
            "/machines",
            items_key="items",
            params={"limit": self.page_limit},
            cursor_param="after",
            next_cursor=_next_page,
        )
        out = [self._instance(m) for m in raw if isinstance(m, dict)]
        now = self.now()
        self.uptime.observe((i.instance_id for i in out if i.status == "running"), now, month_start(now))
        return out

    def _instance(self, machine: Mapping[str, Any]) -> Instance:
        mtype = str(machine.get("machineType") or "")
        configured = parse_money(self._configured_price(mtype))
        labels: dict[str, str] = {}
        price: Decimal | None
        if configured is not None:
            price, source = configured, PriceSource.CONFIG
        else:
            price = parse_money(machine.get("usageRate"))
            source = PriceSource.API if price is not None else PriceSource.NONE
            if price is not None:
                labels["price_basis"] = USAGE_RATE_NOTE
        accelerators = [a for a in machine.get("accelerators") or () if isinstance(a, dict)]
        gpu_count = sum(int(a.get("count") or 0) for a in accelerators)
        status_raw = str(machine.get("state") or "")
        status = "terminated" if machine.get("dtDeleted") else normalize_status(status_raw, STATUS)
        ram = machine.get("ram")
        labels["status_raw"] = status_raw
        for key, label in (("os", "os"), ("privateIp", "private_ip"), ("agentType", "agent_type")):
            if machine.get(key):
                labels[label] = str(machine[key])
        name = str(machine.get("name") or "")
        return self.instance(
            str(machine.get("id") or ""),
            name,
            region=str(machine.get("region") or ""),
            instance_type=mtype,
            status=status,
            gpu_model=str(accelerators[0].get("name") or "") if gpu_count else "",
            gpu_count=gpu_count,
            vcpus=machine.get("cpus"),
            memory_mib=int(ram) // MIB if isinstance(ram, int | float) else None,
            hourly_price=price,
            currency="USD",
            price_source=source,
            created_at=parse_time(machine.get("dtCreated")),
            host=name,
            ip=str(machine.get("publicIp") or ""),
            labels=labels,
        )

    # ---- estimates --------------------------------------------------------------------------------

    async def billing(self) -> list[BillingLine]:
        """Estimates for this month: hourly rate x uptime observed by this collector (no money API)."""
        standing = await self.client.get_json("/billing/account-standing")
        if isinstance(standing, dict) and standing.get("isInGoodStanding") is False:
            log.warning(
                "paperspace_account_not_in_good_standing",
                account=self.account.id,
                admin_locked=bool(standing.get("isAdminLocked")),
            )
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
