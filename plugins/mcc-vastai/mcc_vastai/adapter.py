"""Vast.ai adapter: rented instances with their $/hour, the account balance and invoice charges.

Written only against multicloud-collector's public adapter contract (``ProviderAdapter``,
``ApiClient``, the paginate helpers, ``parse_money``/``parse_time``), so it doubles as the template
for out-of-tree adapters. API facts (docs.vast.ai): base ``https://console.vast.ai``, bearer API key,
``GET /api/v1/instances/`` with ``limit`` (max 25) and keyset ``next_token``; ``dph_total`` is the
instance's total $/hour; ``GET /api/v0/users/current/`` has ``balance``; ``GET /api/v0/invoices/``
lists charges with string amounts; a 429 carries no ``Retry-After`` (so the client backs off).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter
from multicloud_collector.providers.http import paginate_cursor
from multicloud_collector.providers.money import parse_money, parse_time
from multicloud_collector.providers.records import (
    BillingKind,
    BillingLine,
    Instance,
    PriceSource,
    normalize_status,
)

INSTANCES_PATH = "/api/v1/instances/"
USER_PATH = "/api/v0/users/current/"
INVOICES_PATH = "/api/v0/invoices/"
MAX_PAGE_SIZE = 25
DEFAULT_BILLING_DAYS = 31
STATUS_MAP: Mapping[str, str] = {
    "running": "running",
    "frozen": "running",  # paused with memory kept: GPU charges still apply
    "loading": "pending",
    "created": "pending",
    "rebooting": "pending",
    "stopped": "stopped",
    "exited": "stopped",
    "unknown": "unknown",
    "offline": "unknown",
}


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


class VastAiAdapter(ProviderAdapter):
    name: ClassVar[str] = "vastai"
    display_name: ClassVar[str] = "Vast.ai"
    default_base_url: ClassVar[str] = "https://console.vast.ai"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing"})
    api_keys: ClassVar[frozenset[str]] = frozenset({"page_size", "billing_days"})
    credential_keys: ClassVar[tuple[str, ...]] = ("api_key",)
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (
        ("user", USER_PATH),
        ("instances", INSTANCES_PATH + "?limit=1"),
    )

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        for key, top in (("page_size", MAX_PAGE_SIZE), ("billing_days", 3660)):
            value = api.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top
            ):
                problems.append(Problem(f"{path}.{key}", f"must be an integer 1-{top}"))
        return problems

    def _setting_int(self, key: str, default: int) -> int:
        value = self.api.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

    async def instances(self) -> list[Instance]:
        def next_token(data: Any) -> str | None:
            token = data.get("next_token") if isinstance(data, dict) else None
            return str(token) if token else None

        items = await paginate_cursor(
            self.client,
            INSTANCES_PATH,
            items_key="instances",
            params={"limit": min(MAX_PAGE_SIZE, self._setting_int("page_size", MAX_PAGE_SIZE))},
            cursor_param="next_token",
            next_cursor=next_token,
        )
        return [self._instance(i) for i in items if isinstance(i, dict) and i.get("id") is not None]

    def _instance(self, item: Mapping[str, Any]) -> Instance:
        raw = str(item.get("actual_status") or "")
        gpus = _int(item.get("num_gpus")) or 0
        gpu_name = str(item.get("gpu_name") or "")
        price = parse_money(item.get("dph_total"))
        labels = {"status_raw": raw or "provisioning"}
        for key in ("machine_id", "host_id", "image_uuid", "intended_status"):
            if item.get(key) is not None:
                labels[key] = str(item[key])
        return self.instance(
            str(item["id"]),
            str(item.get("label") or f"C.{item['id']}"),
            region=str(item.get("geolocation") or ""),
            instance_type=f"{gpus}x {gpu_name}" if gpu_name else "",
            status=normalize_status(raw, STATUS_MAP) if raw else "pending",
            gpu_model=gpu_name,
            gpu_count=gpus,
            vcpus=_int(item.get("cpu_cores_effective")),
            memory_mib=_int(item.get("cpu_ram")),
            hourly_price=price,
            currency="USD",
            price_source=PriceSource.API if price is not None else PriceSource.NONE,
            created_at=parse_time(item.get("start_date")),
            ip=str(item.get("public_ipaddr") or "").strip(),
            labels=labels,
        )

    async def billing(self) -> list[BillingLine]:
        """The balance (credit left) and every charge line of the last ``billing_days`` days."""
        now = datetime.now(UTC)
        since = now - timedelta(days=self._setting_int("billing_days", DEFAULT_BILLING_DAYS))
        lines: list[BillingLine] = []
        user = await self.client.get_json(USER_PATH)
        balance = parse_money(user.get("balance")) if isinstance(user, dict) else None
        if balance is not None:
            lines.append(
                BillingLine(
                    self.name,
                    self.account.id,
                    f"balance:{user.get('id', '')}",
                    BillingKind.BALANCE,
                    now,
                    now,
                    balance,
                    "USD",
                    description="account balance (prepaid credit)",
                )
            )
        for entry in await self.client.get_json(INVOICES_PATH) or []:
            line = self._charge(entry, since)
            if line is not None:
                lines.append(line)
        return lines

    def _charge(self, entry: object, since: datetime) -> BillingLine | None:
        if not isinstance(entry, dict) or entry.get("type") != "charge":
            return None  # payments and credits are not costs
        at = parse_time(entry.get("timestamp"))
        amount = parse_money(entry.get("amount"))
        if at is None or amount is None or at < since:
            return None
        description = str(entry.get("description") or "")
        digest = hashlib.sha1(description.encode()).hexdigest()[:12]
        resource = str(entry.get("instance_id") or "")
        qty, rate = entry.get("quantity"), entry.get("rate")
        note = f"{qty} x {rate}" if qty is not None and rate is not None else ""
        return BillingLine(
            self.name,
            self.account.id,
            f"charge:{int(at.timestamp())}:{resource}:{digest}",
            BillingKind.INVOICE_ITEM,
            at,
            at,
            amount,
            "USD",
            description=description,
            resource_id=resource,
            note=note,
        )
