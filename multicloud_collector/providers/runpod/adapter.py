"""RunPod: pods, credit balance and spend rate over GraphQL; per-pod daily usage from REST v1 billing.

RunPod runs three API generations side by side. Inventory and the balance come from GraphQL
(``myself { pods {...} clientBalance currentSpendPerHr }``, what runpod-python uses), which
answers errors as HTTP 200 with an ``errors`` list, so every answer is checked for it. Billed
amounts per pod come from REST v1 ``/billing/pods`` on another host (``rest_base_url``),
bucketed by day. Pods have no region; their id doubles as the host name inside the pod.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

from multicloud_collector.config.fields import url_problem
from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, probe
from multicloud_collector.providers.http import ApiClient, ApiError
from multicloud_collector.providers.money import parse_money, parse_time
from multicloud_collector.providers.records import (
    BillingKind,
    BillingLine,
    CheckResult,
    Instance,
    PriceSource,
    normalize_status,
)

GRAPHQL_PATH = "/graphql"
DEFAULT_REST_BASE_URL = "https://rest.runpod.io/v1"
DEFAULT_BILLING_DAYS = 31
PODS_QUERY = (
    "query { myself { pods { id name desiredStatus costPerHr gpuCount vcpuCount memoryInGb "
    "containerDiskInGb volumeInGb imageName podType machineId lastStatusChange uptimeSeconds "
    "machine { gpuDisplayName } runtime { ports { ip isIpPublic privatePort publicPort type } } } } }"
)
BALANCE_QUERY = "query { myself { id clientBalance currentSpendPerHr spendLimit } }"
STATUS = {
    "running": "running",
    "exited": "stopped",
    "terminated": "terminated",
    "created": "pending",
    "restarting": "pending",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def public_ip(pod: Mapping[str, Any]) -> str:
    """The first public IP among the pod's runtime ports, or ""."""
    for port in _dict(pod.get("runtime")).get("ports") or ():
        if isinstance(port, dict) and port.get("isIpPublic") and port.get("ip"):
            return str(port["ip"])
    return ""


class RunPodAdapter(ProviderAdapter):
    """Pods, balance and usage of one RunPod account (one API key)."""

    name: ClassVar[str] = "runpod"
    display_name: ClassVar[str] = "RunPod"
    default_base_url: ClassVar[str] = "https://api.runpod.io"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing"})
    api_keys: ClassVar[frozenset[str]] = frozenset({"rest_base_url", "billing_days"})
    credential_keys: ClassVar[tuple[str, ...]] = ("api_key", "token")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rest = ApiClient(
            self.session,
            self.setting("rest_base_url", DEFAULT_REST_BASE_URL),
            provider=self.name,
            headers=self.auth_headers(),
            timeout=self.timeout,
            max_tries=self.client.max_tries,
            cache_ttl=self.cache_ttl,
            max_retry_wait=self.client.max_retry_wait,
        )

    def now(self) -> datetime:
        """The current time (UTC); tests replace it to get a fixed billing window."""
        return datetime.now(UTC)

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        rest = api.get("rest_base_url")
        if rest is not None:
            why = url_problem(rest) if isinstance(rest, str) else "expected a URL string"
            if why is not None:
                problems.append(Problem(f"{path}.rest_base_url", why))
        days = api.get("billing_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366):
            problems.append(Problem(f"{path}.billing_days", "must be an integer from 1 to 366"))
        return problems

    async def graphql(self, query: str) -> dict[str, Any]:
        """``data`` of a GraphQL answer; an ``errors`` list (sent with HTTP 200) becomes an ApiError."""
        answer = _dict(await self.client.post_json(GRAPHQL_PATH, {"query": query}, cache=True))
        errors = answer.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) else errors
            message = str(_dict(first).get("message") or first)
            self.client.clear_cache()  # never serve a cached error answer
            path = urlsplit(self.client.url_for(GRAPHQL_PATH)).path
            raise ApiError(200, path, f"GraphQL error: {message}", provider=self.name)
        return _dict(answer.get("data"))

    # ---- inventory --------------------------------------------------------------------------------

    async def instances(self) -> list[Instance]:
        myself = _dict((await self.graphql(PODS_QUERY)).get("myself"))
        return [self._instance(p) for p in myself.get("pods") or () if isinstance(p, dict)]

    def _instance(self, pod: Mapping[str, Any]) -> Instance:
        status_raw = str(pod.get("desiredStatus") or "")
        price = parse_money(pod.get("costPerHr"))
        memory = pod.get("memoryInGb")
        gpus = int(pod.get("gpuCount") or 0)
        labels = {"status_raw": status_raw}
        for key, label in (
            ("imageName", "image"),
            ("podType", "pod_type"),
            ("machineId", "machine_id"),
            ("uptimeSeconds", "uptime_seconds"),
        ):
            if pod.get(key) is not None:
                labels[label] = str(pod[key])
        pod_id = str(pod.get("id") or "")
        return self.instance(
            pod_id,
            str(pod.get("name") or ""),
            instance_type=str(pod.get("podType") or ""),
            status=normalize_status(status_raw, STATUS),
            gpu_model=str(_dict(pod.get("machine")).get("gpuDisplayName") or "") if gpus else "",
            gpu_count=gpus,
            vcpus=int(pod["vcpuCount"]) if isinstance(pod.get("vcpuCount"), int | float) else None,
            memory_mib=round(float(memory) * 1024) if isinstance(memory, int | float) else None,
            hourly_price=price,
            currency="USD",
            price_source=PriceSource.API if price is not None else PriceSource.NONE,
            host=pod_id,
            ip=public_ip(pod),
            labels=labels,
        )

    # ---- billing ----------------------------------------------------------------------------------

    async def billing(self) -> list[BillingLine]:
        now = self.now()
        myself = _dict((await self.graphql(BALANCE_QUERY)).get("myself"))
        lines: list[BillingLine] = []
        balance = parse_money(myself.get("clientBalance"))
        if balance is not None:
            spend = parse_money(myself.get("currentSpendPerHr"))
            limit = parse_money(myself.get("spendLimit"))
            lines.append(
                BillingLine(
                    self.name,
                    self.account.id,
                    "balance",
                    BillingKind.BALANCE,
                    now,
                    now,
                    balance,
                    "USD",
                    f"credit balance; current spend {spend}/h, spend limit {limit}/h",
                    note="RunPod credits (1 credit = 1 USD)",
                )
            )
        lines += await self._usage(now)
        return lines

    async def _usage(self, now: datetime) -> list[BillingLine]:
        days = self.api.get("billing_days")
        start = (now - timedelta(days=days if isinstance(days, int) else DEFAULT_BILLING_DAYS)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        params: dict[str, str | int] = {
            "startTime": _rfc3339(start),
            "endTime": _rfc3339(now),
            "bucketSize": "day",
            "grouping": "podId",
        }
        rows = await self.rest.get_json("/billing/pods", params)
        lines: list[BillingLine] = []
        for row in rows if isinstance(rows, list) else ():
            if not isinstance(row, dict):
                continue
            begin = parse_time(row.get("time"))
            amount = parse_money(row.get("amount"))
            if begin is None or amount is None:
                continue
            pod_id = str(row.get("podId") or "")
            hours = (parse_money(row.get("timeBilledMs")) or Decimal(0)) / 3_600_000
            lines.append(
                BillingLine(
                    self.name,
                    self.account.id,
                    f"pods:{pod_id}:{begin:%Y-%m-%d}",
                    BillingKind.USAGE,
                    begin,
                    begin + timedelta(days=1),
                    amount,
                    "USD",
                    f"pod {pod_id}: {hours.normalize()} h, disk {row.get('diskSpaceBilledGb')} GB",
                    resource_id=pod_id,
                )
            )
        return lines

    # ---- connection test ------------------------------------------------------------------------

    async def check(self) -> list[CheckResult]:
        started = time.perf_counter()
        try:
            self.client.clear_cache()
            await self.graphql(BALANCE_QUERY)
            graphql = CheckResult("graphql", True, 200, _ms(started), "ok")
        except ApiError as exc:
            graphql = CheckResult("graphql", False, exc.status, _ms(started), str(exc))
        return [graphql, await probe(self.rest, "billing_pods", "/billing/pods")]

    async def close(self) -> None:
        await super().close()
        self.rest.clear_cache()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
