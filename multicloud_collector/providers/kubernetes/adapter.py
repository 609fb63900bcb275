"""Kubernetes adapter: the cluster's Nodes as instances (GPU capacity, instance type, region, zone).

Auth is a bearer token given by reference (``api.token``) or, in a pod, the mounted service-account
token, re-read before each collection because the kubelet rotates projected tokens. The cluster CA
(``api.ca_file`` or the service account's ``ca.crt``) is handed to the ``ApiClient`` as a per-request
TLS context, so the adapter still uses the process's one shared session.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import aiohttp
import structlog

from multicloud_collector.config.fields import type_name
from multicloud_collector.config.model import AccountConfig
from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, probe
from multicloud_collector.providers.http import ApiClient
from multicloud_collector.providers.kubernetes.config_prices import (
    check_prices,
    config_currency,
    config_prices,
    price_entries,
)
from multicloud_collector.providers.kubernetes.nodes import list_nodes, node_to_instance
from multicloud_collector.providers.records import BillingLine, CheckResult, Instance, PriceEntry
from multicloud_collector.secrets import Secret

log = structlog.get_logger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 5000


def month_start(now: datetime) -> datetime:
    """00:00 UTC on the first of ``now``'s month: the period estimate lines cover."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def in_cluster_url(env: Mapping[str, str]) -> str | None:
    """``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT_HTTPS`` inside a pod, else None.

    The API server's certificate is only guaranteed for that host, not for kubernetes.default.svc.
    """
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = env.get("KUBERNETES_SERVICE_PORT_HTTPS") or env.get("KUBERNETES_SERVICE_PORT") or "443"
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port}"


class KubernetesAdapter(ProviderAdapter):
    name: ClassVar[str] = "kubernetes"
    display_name: ClassVar[str] = "Kubernetes"
    default_base_url: ClassVar[str] = "https://kubernetes.default.svc"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing", "prices"})
    api_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "service_account_dir",
            "ca_file",
            "insecure_skip_tls_verify",
            "page_size",
            "label_selector",
            "prices",
            "currency",
        }
    )
    credential_keys: ClassVar[tuple[str, ...]] = ("token",)
    credential_required: ClassVar[bool] = False  # falls back to the in-cluster service account
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (
        ("version", "/version"),
        ("nodes", "/api/v1/nodes?limit=1"),
    )

    def __init__(
        self,
        account: AccountConfig,
        session: aiohttp.ClientSession,
        *,
        base_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        if base_url is None and not account.api.get("base_url"):
            base_url = in_cluster_url(env)
        super().__init__(account, session, base_url=base_url)
        self.prices_by_type = config_prices(self.api)
        self.currency = config_currency(self.api)
        self.page_size = _page_size(self.api.get("page_size"))
        self.label_selector = self.setting("label_selector")
        self._tls_ready = False

    # ---- configuration ----------------------------------------------------------------------------

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        problems += check_prices(api, path)
        size = api.get("page_size")
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE
        ):
            problems.append(Problem(f"{path}.page_size", f"must be an integer 1-{MAX_PAGE_SIZE}"))
        for key in ("service_account_dir", "ca_file", "label_selector"):
            value = api.get(key)
            if value is not None and not isinstance(value, str):
                problems.append(Problem(f"{path}.{key}", f"expected a string, got {type_name(value)}"))
        skip = api.get("insecure_skip_tls_verify")
        if skip is not None and not isinstance(skip, bool):
            problems.append(
                Problem(f"{path}.insecure_skip_tls_verify", f"expected true or false, got {type_name(skip)}")
            )
        return problems

    @property
    def service_account_dir(self) -> Path:
        return Path(self.setting("service_account_dir", SERVICE_ACCOUNT_DIR))

    def credential(self) -> str:
        """``api.token`` when set, else the service-account token file (empty if neither exists)."""
        token = super().credential()
        if token:
            return token
        try:
            return (self.service_account_dir / "token").read_text().strip()
        except OSError:
            return ""

    def auth_headers(self) -> Mapping[str, str | Secret]:
        token = self.credential()
        return {"Authorization": Secret(f"Bearer {token}")} if token else {}

    def ca_file(self) -> str:
        configured = self.setting("ca_file")
        if configured:
            return configured
        if not super().credential():
            sa_ca = self.service_account_dir / "ca.crt"
            if sa_ca.is_file():
                return str(sa_ca)
        return ""

    async def _ready_client(self) -> ApiClient:
        """The client, with fresh auth headers and (first time, for https) the cluster's TLS trust."""
        self.client.headers.update(self.auth_headers())
        if self._tls_ready:
            return self.client
        self._tls_ready = True
        self.client.ssl_context = self._ssl_context()
        return self.client

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.base_url.startswith("https://"):
            return None
        if self.api.get("insecure_skip_tls_verify") is True:
            log.warning("kubernetes_tls_verify_disabled", account=self.account.id)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ca = self.ca_file()
        return ssl.create_default_context(cafile=ca) if ca else None

    # ---- collection -------------------------------------------------------------------------------

    async def instances(self) -> list[Instance]:
        client = await self._ready_client()
        nodes = await list_nodes(client, limit=self.page_size, label_selector=self.label_selector)
        return [
            node_to_instance(
                n,
                provider=self.name,
                account=self.account.id,
                prices=self.prices_by_type,
                currency=self.currency,
            )
            for n in nodes
        ]

    async def billing(self) -> list[BillingLine]:
        """Estimates (configured hourly price x time running this month); Kubernetes has no money API."""
        if not self.prices_by_type:
            return []
        return await self.month_to_date_estimates()

    async def prices(self) -> list[PriceEntry]:
        return price_entries(self.name, self.prices_by_type, self.currency)

    async def check(self) -> list[CheckResult]:
        client = await self._ready_client()
        return [await probe(client, name, path) for name, path in self.check_paths]


def _page_size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PAGE_SIZE:
        return value
    return DEFAULT_PAGE_SIZE
