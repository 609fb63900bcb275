"""CoreWeave adapter: every node of the org's CKS clusters, priced from configured instance-type rates.

CoreWeave delivers compute as Kubernetes (CKS) clusters: the CKS API lists the clusters and each
cluster's own API server lists its nodes, labelled with CoreWeave instance types such as
``gd-8xh100ib-i128``. No pricing or dollar API exists (the FOCUS export has quantities only), so
hourly prices come from ``api.prices`` and billing lines are estimates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp

from multicloud_collector.config.fields import type_name
from multicloud_collector.config.model import AccountConfig
from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.base import ProviderAdapter, probe
from multicloud_collector.providers.http import ApiClient, ApiError
from multicloud_collector.providers.kubernetes.adapter import MAX_PAGE_SIZE
from multicloud_collector.providers.kubernetes.config_prices import (
    check_prices,
    config_currency,
    config_prices,
    price_entries,
)
from multicloud_collector.providers.kubernetes.nodes import list_nodes, node_to_instance
from multicloud_collector.providers.records import BillingLine, CheckResult, Instance, PriceEntry
from multicloud_collector.secrets import Secret

CLUSTERS_PATH = "/v1beta1/cks/clusters"
DEFAULT_PAGE_SIZE = 500
COREWEAVE_LABEL_PREFIXES = ("node.coreweave.cloud/", "ib.coreweave.cloud/")


class CoreWeaveAdapter(ProviderAdapter):
    name: ClassVar[str] = "coreweave"
    display_name: ClassVar[str] = "CoreWeave"
    default_base_url: ClassVar[str] = "https://api.coreweave.com"
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory", "billing", "prices"})
    api_keys: ClassVar[frozenset[str]] = frozenset(
        {"cluster_token", "clusters", "cluster_urls", "page_size", "prices", "currency"}
    )
    credential_keys: ClassVar[tuple[str, ...]] = ("token",)
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = (("cks_clusters", CLUSTERS_PATH),)

    def __init__(
        self, account: AccountConfig, session: aiohttp.ClientSession, *, base_url: str | None = None
    ) -> None:
        super().__init__(account, session, base_url=base_url)
        self.prices_by_type = config_prices(self.api)
        self.currency = config_currency(self.api)
        size = self.api.get("page_size")
        self.page_size = (
            size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else DEFAULT_PAGE_SIZE
        )
        wanted = self.api.get("clusters")
        self.only_clusters = {str(c) for c in wanted} if isinstance(wanted, list) else None
        urls = self.api.get("cluster_urls")
        self.cluster_urls = {str(k): str(v) for k, v in urls.items()} if isinstance(urls, Mapping) else {}
        self._cluster_clients: dict[str, ApiClient] = {}

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        problems = super().validate_api_config(api, path)
        problems += check_prices(api, path)
        size = api.get("page_size")
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE
        ):
            problems.append(Problem(f"{path}.page_size", f"must be an integer 1-{MAX_PAGE_SIZE}"))
        clusters = api.get("clusters")
        if clusters is not None and (
            not isinstance(clusters, list) or not all(isinstance(c, str) for c in clusters)
        ):
            problems.append(
                Problem(f"{path}.clusters", f"expected a list of cluster names, got {type_name(clusters)}")
            )
        urls = api.get("cluster_urls")
        if urls is not None:
            if not isinstance(urls, Mapping):
                problems.append(
                    Problem(
                        f"{path}.cluster_urls",
                        f"expected a mapping of cluster name to URL, got {type_name(urls)}",
                    )
                )
            else:
                for key, value in urls.items():
                    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                        problems.append(Problem(f"{path}.cluster_urls.{key}", "expected an http(s) URL"))
        return problems

    def cluster_token(self) -> str:
        """The token for the clusters' API servers: ``api.cluster_token``, else the CKS token."""
        value = self.api.get("cluster_token")
        if value:
            return value.reveal() if isinstance(value, Secret) else str(value)
        return self.credential()

    def _cluster_client(self, endpoint: str) -> ApiClient:
        client = self._cluster_clients.get(endpoint)
        if client is None:
            token = self.cluster_token()
            client = self._cluster_clients[endpoint] = ApiClient(
                self.session,
                endpoint,
                provider=self.name,
                headers={"Authorization": Secret(f"Bearer {token}")} if token else {},
                timeout=self.client.timeout,
                max_tries=self.client.max_tries,
                cache_ttl=self.client.cache_ttl,
                max_retry_wait=self.client.max_retry_wait,
                sleep=self.client.sleep,
            )
        return client

    async def clusters(self) -> list[dict[str, Any]]:
        """The org's CKS clusters (``GET /v1beta1/cks/clusters`` items), kept by ``api.clusters``."""
        data = await self.client.get_json(CLUSTERS_PATH)
        items = data.get("items") if isinstance(data, dict) else None
        out = [c for c in items or [] if isinstance(c, dict)]
        if self.only_clusters is not None:
            out = [c for c in out if c.get("name") in self.only_clusters]
        return out

    def endpoint(self, cluster: Mapping[str, Any]) -> str:
        name = str(cluster.get("name", ""))
        url = self.cluster_urls.get(name) or str(cluster.get("apiServerEndpoint") or "")
        if url and not url.startswith(("http://", "https://")):
            url = f"https://{url}"
        return url.rstrip("/")

    async def _cluster_instances(self, cluster: Mapping[str, Any]) -> list[Instance]:
        name = str(cluster.get("name", ""))
        endpoint = self.endpoint(cluster)
        if not endpoint:
            raise ApiError(None, CLUSTERS_PATH, f"cluster {name}: no apiServerEndpoint", provider=self.name)
        try:
            nodes = await list_nodes(self._cluster_client(endpoint), limit=self.page_size)
        except ApiError as exc:
            raise ApiError(exc.status, exc.path, f"cluster {name}: {exc.reason}", provider=self.name) from exc
        extra = {"cluster": name, "cluster_id": str(cluster.get("id", ""))}
        return [
            node_to_instance(
                n,
                provider=self.name,
                account=self.account.id,
                prices=self.prices_by_type,
                currency=self.currency,
                default_zone=str(cluster.get("zone", "")),
                extra_labels=extra,
                keep_label_prefixes=COREWEAVE_LABEL_PREFIXES,
            )
            for n in nodes
        ]

    async def instances(self) -> list[Instance]:
        per_cluster = await asyncio.gather(*(self._cluster_instances(c) for c in await self.clusters()))
        return [inst for group in per_cluster for inst in group]

    async def billing(self) -> list[BillingLine]:
        """Estimates: configured hourly price x time running this month (CoreWeave has no $ API)."""
        if not self.prices_by_type:
            return []
        return await self.month_to_date_estimates()

    async def prices(self) -> list[PriceEntry]:
        return price_entries(self.name, self.prices_by_type, self.currency)

    async def check(self) -> list[CheckResult]:
        """The CKS API, then each cluster's API server (``/version``)."""
        results = [await probe(self.client, "cks_clusters", CLUSTERS_PATH)]
        if not results[0].ok:
            return results
        for cluster in await self.clusters():
            endpoint = self.endpoint(cluster)
            if endpoint:
                results.append(
                    await probe(self._cluster_client(endpoint), f"cluster:{cluster.get('name')}", "/version")
                )
        return results

    async def close(self) -> None:
        await super().close()
        for client in self._cluster_clients.values():
            client.clear_cache()
