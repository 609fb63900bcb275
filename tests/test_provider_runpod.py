"""RunPod adapter against a local fake of RunPod's GraphQL and REST v1 billing (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fakes.runpod import API_KEY, RunPodState, make_app
from fakes.server import FakeServer, Sleeps
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.providers.runpod import RunPodAdapter
from multicloud_collector.providers.runpod.adapter import BALANCE_QUERY, public_ip
from multicloud_collector.secrets import Secret

NOW = datetime(2024, 10, 20, 12, 0, tzinfo=UTC)






@pytest.fixture
async def fake() -> AsyncIterator[tuple[RunPodState, str]]:
    state = RunPodState()
    async with FakeServer(make_app(state)) as srv:
        yield state, srv.url


def make_adapter(session: aiohttp.ClientSession, url: str, key: str = API_KEY, **api: Any) -> RunPodAdapter:
    account = AccountConfig(
        id="acme-runpod",
        customer="acme",
        provider="runpod",
        api={"api_key": Secret(key), "base_url": url, "rest_base_url": f"{url}/v1", **api},
    )
    adapter = RunPodAdapter(account, session)
    adapter.now = lambda: NOW  # type: ignore[method-assign]
    return adapter


async def test_pods_over_graphql(session, fake) -> None:
    state, url = fake
    pods = await make_adapter(session, url).instances()
    assert [p.name for p in pods] == ["llm-finetune", "sd-infer", "idle-a100"]
    h100 = pods[0]
    assert (h100.gpu_model, h100.gpu_count, h100.vcpus, h100.memory_mib) == ("H100 80GB HBM3", 1, 16, 128000)
    assert (
        h100.hourly_price == Decimal("2.49")
        and h100.price_source is PriceSource.API
        and h100.currency == "USD"
    )
    assert (h100.status, h100.host, h100.ip, h100.instance_id) == (
        "running",
        "k3x9vq2m1a7b4c",
        "203.0.113.50",
        "k3x9vq2m1a7b4c",
    )
    assert h100.labels["uptime_seconds"] == "86400" and h100.labels["pod_type"] == "RESERVED"
    assert pods[1].gpu_count == 2 and pods[1].hourly_price == Decimal("0.44")
    assert (pods[2].status, pods[2].labels["status_raw"], pods[2].ip) == ("stopped", "EXITED", "")
    assert state.requests[0][:2] == ("POST", "/graphql")
    assert "pods" in state.bodies[0]["query"]


async def test_billing_balance_and_daily_pod_usage(session, fake) -> None:
    state, url = fake
    lines = await make_adapter(session, url).billing()
    balance = lines[0]
    assert balance.kind is BillingKind.BALANCE and balance.amount == Decimal("412.37")
    assert "current spend 2.93/h" in balance.description
    usage = [line for line in lines if line.kind is BillingKind.USAGE]
    assert [u.line_id for u in usage] == [
        "pods:k3x9vq2m1a7b4c:2024-10-01",
        "pods:p8w2z5n0r6t1yq:2024-10-02",
        "pods:e4d3c2b1a0f9gh:2024-10-02",
    ]
    assert sum((u.amount for u in usage), Decimal(0)) == Decimal(
        "60.30"
    )  # 59.76 + 0.44 + 0.1, no float drift
    assert usage[0].period_start == datetime(2024, 10, 1, tzinfo=UTC)
    assert usage[0].period_end == datetime(2024, 10, 2, tzinfo=UTC)
    assert usage[0].resource_id == "k3x9vq2m1a7b4c" and "24 h" in usage[0].description
    query = next(q for m, p, q in state.requests if p == "/v1/billing/pods")
    assert query == {
        "startTime": "2024-09-19T00:00:00Z",
        "endTime": "2024-10-20T12:00:00Z",
        "bucketSize": "day",
        "grouping": "podId",
    }


async def test_graphql_errors_on_http_200_raise(session, fake) -> None:
    state, url = fake
    state.graphql_error = "Something went wrong. Please try again later."
    adapter = make_adapter(session, url)
    with pytest.raises(ApiError) as info:
        await adapter.instances()
    assert (
        str(info.value) == "200 from /graphql: GraphQL error: Something went wrong. Please try again later."
    )
    state.graphql_error = None
    assert len(await adapter.instances()) == 3  # the error answer was not cached


async def test_unknown_field_is_a_graphql_error(session, fake) -> None:
    _, url = fake
    adapter = make_adapter(session, url)
    with pytest.raises(ApiError, match='Cannot query field "bogusField"'):
        await adapter.graphql("query { myself { bogusField } }")


async def test_429_honours_retry_after(session, fake) -> None:
    state, url = fake
    state.rate_limit_next = 1
    adapter = make_adapter(session, url)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    assert len(await adapter.instances()) == 3
    assert sleeps.waits == [5.0]
    await adapter.graphql(BALANCE_QUERY)  # cached: the next 429 lands on the REST billing call
    state.rate_limit_next = 1
    state.retry_after = 2
    rest_sleeps = Sleeps()
    adapter.rest.sleep = rest_sleeps
    await adapter.billing()
    assert rest_sleeps.waits == [2.0] and adapter.rest.stats.rate_limited == 1


async def test_bad_key(session, fake) -> None:
    _, url = fake
    with pytest.raises(ApiError) as info:
        await make_adapter(session, url, key="rpa_WRONGKEY_000000").instances()
    assert str(info.value).startswith("401 from /graphql: token rejected")
    assert info.value.is_auth and "rpa_WRONGKEY" not in str(info.value)


async def test_cache_hit_within_ttl(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url)
    await adapter.instances()
    await adapter.instances()
    assert len(state.requests) == 1 and adapter.client.stats.cache_hits == 1
    await adapter.close()
    await adapter.instances()
    assert len(state.requests) == 2


async def test_check(session, fake) -> None:
    state, url = fake
    results = await make_adapter(session, url).check()
    assert [(r.name, r.ok, r.status) for r in results] == [
        ("graphql", True, 200),
        ("billing_pods", True, 200),
    ]
    state.fail_next = [500]
    bad = await make_adapter(session, url, max_tries=1).check()
    assert (bad[0].ok, bad[0].status) == (False, 500) and bad[0].detail.startswith("500 from /graphql")
    assert bad[1].ok


def test_validate_api_config() -> None:
    api = {"api_key": Secret("k" * 20), "rest_base_url": "ftp://x", "billing_days": 0}
    assert [str(p) for p in RunPodAdapter.validate_api_config(api, "accounts[4].api")] == [
        "accounts[4].api.rest_base_url: scheme must be http or https",
        "accounts[4].api.billing_days: must be an integer from 1 to 366",
    ]
    assert str(RunPodAdapter.validate_api_config({}, "a.api")[0]).startswith("a.api.api_key: required")


def test_plugin_registers_adapter() -> None:
    from multicloud_collector.providers.runpod import plugin

    seen: list[type] = []
    plugin.register_providers(seen.append)
    assert seen == [RunPodAdapter]


@given(st.lists(st.tuples(st.booleans(), st.one_of(st.none(), st.ip_addresses(v=4).map(str))), max_size=5))
def test_public_ip_is_first_public_port(ports: list[tuple[bool, str | None]]) -> None:
    pod = {"runtime": {"ports": [{"isIpPublic": pub, "ip": ip} for pub, ip in ports]}}
    expected = next((ip for pub, ip in ports if pub and ip), "")
    assert public_ip(pod) == expected
