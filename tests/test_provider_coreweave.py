"""CoreWeave adapter against a fake CKS API whose clusters' API servers are served by the same fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fakes.coreweave import CKS_TOKEN, CLUSTER_TOKEN, CoreWeaveFake, default_clusters
from fakes.server import FakeServer, Sleeps

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.plugins.manager import Registry, build_plugin_manager
from multicloud_collector.providers.coreweave.adapter import CoreWeaveAdapter
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.kubernetes.adapter import month_start
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret

EAST, WEST = (c["id"] for c in default_clusters())
PRICES = {"gd-8xh100ib-i128": "49.24", "cd-gp-i64-erapids": 3.1}


def account(url: str, **api: Any) -> AccountConfig:
    settings: dict[str, Any] = {
        "base_url": url,
        "token": Secret(CKS_TOKEN),
        "cluster_token": Secret(CLUSTER_TOKEN),
    }
    settings.update(api)
    return AccountConfig(id="cw-org", customer="acme", provider="coreweave", api=settings)




@pytest.fixture
async def fake() -> AsyncIterator[tuple[CoreWeaveFake, str]]:
    f = CoreWeaveFake()
    async with FakeServer(f) as srv:
        yield f, srv.url


async def test_nodes_of_every_cluster_across_pages(
    fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    adapter = CoreWeaveAdapter(account(url, page_size=2, prices=PRICES), session)
    insts = {i.instance_id: i for i in await adapter.instances()}
    assert sorted(insts) == ["cpu-w01", "g8h100-a01", "g8h100-a02", "g8h100-a03"]
    assert f.state.count(f"/k8s/{EAST}/api/v1/nodes") == 2  # 3 nodes at 2 per page
    a01 = insts["g8h100-a01"]
    assert (a01.instance_type, a01.gpu_count, a01.gpu_model, a01.zone) == (
        "gd-8xh100ib-i128",
        8,
        "NVIDIA-H100-80GB-HBM3",
        "US-EAST-04A",
    )
    assert (a01.hourly_price, a01.price_source, a01.currency) == (Decimal("49.24"), PriceSource.CONFIG, "USD")
    assert a01.labels["cluster"] == "train-east" and a01.labels["cluster_id"] == EAST
    assert a01.labels["node.coreweave.cloud/state"] == "production"
    assert insts["g8h100-a03"].labels["node.coreweave.cloud/state"] == "triage"
    assert insts["cpu-w01"].zone == "US-WEST-01A" and insts["cpu-w01"].hourly_price == Decimal("3.1")
    cks = [r for r in f.state.requests if r.path == "/v1beta1/cks/clusters"]
    assert cks[0].headers["Authorization"] == f"Bearer {CKS_TOKEN}"
    node_req = next(r for r in f.state.requests if r.path.endswith("/api/v1/nodes"))
    assert node_req.headers["Authorization"] == f"Bearer {CLUSTER_TOKEN}"
    await adapter.close()


async def test_cluster_filter_and_url_override(
    fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    adapter = CoreWeaveAdapter(
        account(url, clusters=["infer-west"], cluster_urls={"infer-west": f"{url}/k8s/{WEST}/"}), session
    )
    assert [i.name for i in await adapter.instances()] == ["cpu-w01"]
    assert adapter.endpoint(
        {"name": "x", "apiServerEndpoint": "api.org-abc.k8s.us-east-04a.coreweave.com"}
    ) == ("https://api.org-abc.k8s.us-east-04a.coreweave.com")


async def test_expired_continue_in_one_cluster_restarts_that_list(
    fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    f.cluster_nodes[EAST].expire_continue_next = 1
    adapter = CoreWeaveAdapter(account(url, page_size=2), session)
    assert len(await adapter.instances()) == 4
    assert f.state.count(f"/k8s/{EAST}/api/v1/nodes") == 4  # page 1, 410, page 1, page 2


async def test_estimates_are_exact(fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession) -> None:
    _, url = fake
    adapter = CoreWeaveAdapter(account(url, prices=PRICES), session)
    lines = await adapter.billing()
    assert len(lines) == 4
    for line in lines:
        assert line.kind == BillingKind.ESTIMATE and line.period_start == month_start(line.period_end)
        hours = Decimal(str((line.period_end - line.period_start).total_seconds())) / Decimal(3600)
        price = Decimal("3.1") if line.resource_id == "cpu-w01" else Decimal("49.24")
        assert line.amount == (price * hours).quantize(Decimal("0.000001"))
    assert [(p.instance_type, p.hourly_price) for p in await adapter.prices()] == [
        ("cd-gp-i64-erapids", Decimal("3.1")),
        ("gd-8xh100ib-i128", Decimal("49.24")),
    ]
    assert await CoreWeaveAdapter(account(url), session).billing() == []


async def test_429_is_retried_after_backoff(
    fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    adapter = CoreWeaveAdapter(account(url), session)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    f.state.rate_limit_next = 2  # the CKS call, then the first cluster call
    assert len(await adapter.instances()) == 4
    assert len(sleeps.waits) == 2 and all(
        0 <= w <= 1.0 for w in sleeps.waits
    )  # no headers: full-jitter backoff


async def test_auth_failures_name_status_path_and_cluster(
    fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    with pytest.raises(ApiError) as err:
        await CoreWeaveAdapter(account(url, token=Secret("bad-cks-token-1")), session).instances()
    assert str(err.value).startswith("401 from /v1beta1/cks/clusters: token rejected")
    bad_cluster = CoreWeaveAdapter(account(url, cluster_token=Secret("bad-cluster-token-2")), session)
    with pytest.raises(ApiError) as err2:
        await bad_cluster.instances()
    assert err2.value.status == 401 and "cluster " in str(err2.value) and "/api/v1/nodes" in str(err2.value)
    assert "bad-cluster-token-2" not in str(err2.value)
    checks = await bad_cluster.check()
    assert [(c.name, c.ok) for c in checks] == [
        ("cks_clusters", True),
        ("cluster:train-east", False),
        ("cluster:infer-west", False),
    ]
    failing = await CoreWeaveAdapter(account(url, token=Secret("bad-cks-token-1")), session).check()
    assert [(c.name, c.ok, c.status) for c in failing] == [("cks_clusters", False, 401)]


async def test_missing_endpoint_is_reported(
    fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    adapter = CoreWeaveAdapter(account(url), session)
    with pytest.raises(ApiError) as err:
        await adapter._cluster_instances({"name": "ghost", "id": "x"})
    assert "cluster ghost: no apiServerEndpoint" in str(err.value)


async def test_cache_hit_within_ttl(fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession) -> None:
    f, url = fake
    adapter = CoreWeaveAdapter(account(url), session)
    first = await adapter.instances()
    n = len(f.state.requests)
    assert await adapter.instances() == first and len(f.state.requests) == n


async def test_check_probes_cks_and_each_cluster(
    fake: tuple[CoreWeaveFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    checks = await CoreWeaveAdapter(account(url), session).check()
    assert [(c.name, c.ok, c.status) for c in checks] == [
        ("cks_clusters", True, 200),
        ("cluster:train-east", True, 200),
        ("cluster:infer-west", True, 200),
    ]


def test_cluster_token_defaults_to_api_token(session: aiohttp.ClientSession) -> None:
    acct = AccountConfig(id="a", customer="c", provider="coreweave", api={"token": Secret("only-token-1")})
    assert CoreWeaveAdapter(acct, session).cluster_token() == "only-token-1"
    acct2 = AccountConfig(
        id="a", customer="c", provider="coreweave", api={"token": "t", "cluster_token": "plain-2"}
    )
    assert CoreWeaveAdapter(acct2, session).cluster_token() == "plain-2"


def test_validate_api_config_messages() -> None:
    api = {
        "page_size": "many",
        "clusters": "train-east",
        "cluster_urls": {"a": "ftp://x"},
        "prices": {"gd-8xh100ib-i128": "n/a"},
    }
    got = {str(p) for p in CoreWeaveAdapter.validate_api_config(api, "accounts[1].api")}
    assert got == {
        "accounts[1].api.token: required; use ${ENV_VAR} or token_file",
        "accounts[1].api.page_size: must be an integer 1-5000",
        "accounts[1].api.clusters: expected a list of cluster names, got string",
        "accounts[1].api.cluster_urls.a: expected an http(s) URL",
        "accounts[1].api.prices.gd-8xh100ib-i128: expected an hourly price (number), got 'n/a'",
    }
    bad_urls = CoreWeaveAdapter.validate_api_config({"token": "t", "cluster_urls": ["x"]}, "p")
    assert [str(p) for p in bad_urls] == [
        "p.cluster_urls: expected a mapping of cluster name to URL, got list"
    ]


def test_registered_through_its_plugin_module() -> None:
    pm = build_plugin_manager(False, default_plugins=("multicloud_collector.providers.coreweave.plugin",))
    assert Registry(pm).adapters == {"coreweave": CoreWeaveAdapter}
