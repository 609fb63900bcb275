"""Docker Engine adapter: the host's containers as instances, with the GPUs each one requested.

The Engine API is HTTP over the unix socket ``/var/run/docker.sock``. The shared aiohttp session
speaks TCP only (its connector cannot also dial a unix socket), so this adapter is the documented
exception to "one shared session": it opens its own session on an ``aiohttp.UnixConnector`` and
closes it in ``close()``. With ``api.base_url`` (a daemon exposed over TCP, or a proxy) it uses the
shared session like every other adapter. GPU requests (``--gpus``) are only in the per-container
inspect answer, so inventory is one list call plus one inspect per container (bounded concurrency).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp
import structlog

from multicloud_collector.config.fields import type_name
from multicloud_collector.config.model import AccountConfig
from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, probe
from multicloud_collector.providers.http import ApiClient, ApiError
from multicloud_collector.providers.kubernetes.config_prices import (
    check_prices,
    config_currency,
    config_prices,
    price_entries,
)
from multicloud_collector.providers.money import parse_time
from multicloud_collector.providers.records import (
    BillingLine,
    CheckResult,
    Instance,
    PriceEntry,
    PriceSource,
    normalize_status,
)

log = structlog.get_logger(__name__)

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_API_VERSION = "1.43"  # DeviceRequests need >= 1.40; Docker 29 refuses < 1.44 (set api_version)
UNIX_BASE_URL = "http://localhost"  # the host part is ignored on a unix socket
INSPECT_CONCURRENCY = 8
MIB = 1024 * 1024
STATUS_MAP: Mapping[str, str] = {
    "running": "running",
    "created": "pending",
    "restarting": "pending",
    "paused": "stopped",
    "exited": "stopped",
    "removing": "terminated",
    "dead": "terminated",
}


def gpu_requests(device_requests: object, host_gpu_count: int = 0) -> tuple[int, dict[str, str]]:
    """(GPU count, labels) from ``HostConfig.DeviceRequests``.

    A request is a GPU request when its driver is ``nvidia`` or a capability set contains ``gpu``.
    ``DeviceIDs`` count one each; ``Count: -1`` means all GPUs of the host (``host_gpu_count``).
    """
    count, ids, drivers, wants_all = 0, [], set(), False
    for req in device_requests if isinstance(device_requests, list) else []:
        if not isinstance(req, Mapping):
            continue
        caps = req.get("Capabilities") or []
        driver = str(req.get("Driver") or "")
        if driver != "nvidia" and not any(isinstance(c, list) and "gpu" in c for c in caps):
            continue
        drivers.add(driver or "default")
        device_ids = [str(d) for d in req.get("DeviceIDs") or []]
        n = req.get("Count")
        if device_ids:
            ids += device_ids
            count += len(device_ids)
        elif n == -1:
            wants_all = True
            count += host_gpu_count
        elif isinstance(n, int) and n > 0:
            count += n
    labels: dict[str, str] = {}
    if drivers:
        labels["gpu_driver"] = ",".join(sorted(drivers))
    if ids:
        labels["gpu_device_ids"] = ",".join(ids)
    if wants_all:
        labels["gpu_request"] = "all"
    return count, labels


def _first_ip(summary: Mapping[str, Any]) -> str:
    networks = ((summary.get("NetworkSettings") or {}).get("Networks")) or {}
    for net in networks.values() if isinstance(networks, Mapping) else []:
        ip = net.get("IPAddress") if isinstance(net, Mapping) else None
        if ip:
            return str(ip)
    return ""


class DockerAdapter(ProviderAdapter):
    name: ClassVar[str] = "docker"
    display_name: ClassVar[str] = "Docker Engine"
    default_base_url: ClassVar[str] = UNIX_BASE_URL
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing", "prices"})
    api_keys: ClassVar[frozenset[str]] = frozenset(
        {"socket", "api_version", "host_gpu_count", "prices", "currency"}
    )
    credential_keys: ClassVar[tuple[str, ...]] = ()
    credential_required: ClassVar[bool] = False  # access is the socket's file permissions
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (
        ("version", "/version"),
        ("containers", "/containers/json?limit=1"),
    )

    def __init__(
        self, account: AccountConfig, session: aiohttp.ClientSession, *, base_url: str | None = None
    ) -> None:
        super().__init__(account, session, base_url=base_url)
        self.socket = self.setting("socket", DEFAULT_SOCKET)
        self.api_version = self.setting("api_version", DEFAULT_API_VERSION).lstrip("v")
        self.use_socket = base_url is None and not self.api.get("base_url")
        gpus = self.api.get("host_gpu_count")
        self.host_gpu_count = gpus if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 0 else 0
        self.prices_by_image = config_prices(self.api)
        self.currency = config_currency(self.api)
        self._own_session: aiohttp.ClientSession | None = None
        self._ready = False

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        problems += check_prices(api, path)
        sock = api.get("socket")
        if sock is not None and (not isinstance(sock, str) or not sock.startswith("/")):
            problems.append(
                Problem(f"{path}.socket", f"expected an absolute path to the Docker socket, got {sock!r}")
            )
        version = api.get("api_version")
        if version is not None:
            parts = str(version).lstrip("v").split(".")
            if not isinstance(version, str) or len(parts) != 2 or not all(p.isdigit() for p in parts):
                problems.append(
                    Problem(f"{path}.api_version", f'expected a version such as "1.43", got {version!r}')
                )
        gpus = api.get("host_gpu_count")
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
            problems.append(
                Problem(f"{path}.host_gpu_count", f"expected an integer >= 0, got {type_name(gpus)}")
            )
        return problems

    async def _client_ready(self) -> ApiClient:
        """Point the client at ``/v<api_version>``; on the socket, over this adapter's own session."""
        if self._ready:
            return self.client
        self._ready = True
        old = self.client
        session = self.session
        if self.use_socket:
            self._own_session = session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket)
            )
        self.client = ApiClient(
            session,
            f"{self.base_url}/v{self.api_version}",
            provider=self.name,
            headers=old.headers,
            timeout=old.timeout,
            max_tries=old.max_tries,
            cache_ttl=old.cache_ttl,
            max_retry_wait=old.max_retry_wait,
            sleep=old.sleep,
        )
        return self.client

    async def _inspect(self, client: ApiClient, cid: str, gate: asyncio.Semaphore) -> dict[str, Any] | None:
        async with gate:
            try:
                data = await client.get_json(f"/containers/{cid}/json")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                log.info("docker_container_gone", container=cid[:12])  # removed between list and inspect
                return None
        return data if isinstance(data, dict) else None

    async def instances(self) -> list[Instance]:
        try:
            return await self._instances()
        except ApiError as exc:
            if exc.status is None and self.use_socket:  # say which socket could not be reached
                raise ApiError(None, exc.path, f"{exc.reason} on {self.socket}", provider=self.name) from exc
            raise

    async def _instances(self) -> list[Instance]:
        client = await self._client_ready()
        info = await client.get_json("/info")
        host = str(info.get("Name", "")) if isinstance(info, dict) else ""
        summaries = await client.get_json("/containers/json", {"all": "1"})
        summaries = [s for s in summaries or [] if isinstance(s, dict) and s.get("Id")]
        gate = asyncio.Semaphore(INSPECT_CONCURRENCY)
        details = await asyncio.gather(*(self._inspect(client, str(s["Id"]), gate) for s in summaries))
        return [self._instance(s, d, host) for s, d in zip(summaries, details, strict=True)]

    def _instance(self, summary: Mapping[str, Any], inspect: Mapping[str, Any] | None, host: str) -> Instance:
        host_config = (inspect or {}).get("HostConfig") or {}
        gpus, labels = gpu_requests(host_config.get("DeviceRequests"), self.host_gpu_count)
        raw_state = str(summary.get("State", ""))
        labels["status_raw"] = raw_state
        if summary.get("Status"):
            labels["status_text"] = str(summary["Status"])
        if summary.get("ImageID"):
            labels["image_id"] = str(summary["ImageID"])
        project = (summary.get("Labels") or {}).get("com.docker.compose.project")
        if project:
            labels["compose_project"] = str(project)
        nano = host_config.get("NanoCpus")
        mem = host_config.get("Memory")
        image = str(summary.get("Image", ""))
        price = self.prices_by_image.get(image)
        names = summary.get("Names") or []
        return self.instance(
            str(summary["Id"]),
            str(names[0]).lstrip("/") if names else str(summary["Id"])[:12],
            instance_type=image,
            status=normalize_status(raw_state, STATUS_MAP),
            gpu_count=gpus,
            vcpus=max(1, nano // 1_000_000_000) if isinstance(nano, int) and nano > 0 else None,
            memory_mib=mem // MIB if isinstance(mem, int) and mem > 0 else None,
            hourly_price=price,
            currency=self.currency,
            price_source=PriceSource.CONFIG if price is not None else PriceSource.NONE,
            created_at=parse_time(summary.get("Created")),
            host=host,
            ip=_first_ip(summary),
            labels=labels,
        )

    async def billing(self) -> list[BillingLine]:
        """Estimates for containers whose image has a configured hourly price; Docker has no money API."""
        if not self.prices_by_image:
            return []
        return await self.month_to_date_estimates()

    async def prices(self) -> list[PriceEntry]:
        return price_entries(self.name, self.prices_by_image, self.currency)

    async def check(self) -> list[CheckResult]:
        client = await self._client_ready()
        return [await probe(client, name, path) for name, path in self.check_paths]

    async def close(self) -> None:
        await super().close()
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None
