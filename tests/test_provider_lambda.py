"""Lambda Cloud adapter against a local fake of the Lambda Cloud API (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fakes.lambda_cloud import API_KEY, LambdaState, make_app
from fakes.server import FakeServer, Sleeps
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.providers.base import ESTIMATE_NOTE
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.lambda_cloud import LambdaAdapter
from multicloud_collector.providers.lambda_cloud.adapter import instance_type_price
from multicloud_collector.providers.lambda_cloud.uptime import ObservedUptime
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret

T0 = datetime(2024, 10, 10, 9, 0, tzinfo=UTC)






@pytest.fixture
async def fake() -> AsyncIterator[tuple[LambdaState, str]]:
    state = LambdaState()
    async with FakeServer(make_app(state)) as srv:
        yield state, srv.url


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def make_adapter(session: aiohttp.ClientSession, url: str, key: str = API_KEY, **api: Any) -> LambdaAdapter:
    account = AccountConfig(
        id="acme-lambda",
        customer="acme",
        provider="lambda",
        api={"api_key": Secret(key), "base_url": f"{url}/api/v1", **api},
    )
    return LambdaAdapter(account, session)


async def test_inventory_maps_gpu_instances(session, fake) -> None:
    state, url = fake
    instances = await make_adapter(session, url).instances()
    assert [i.name for i in instances] == ["train-a100", "infer-a10", "old-gh200"]
    a100 = instances[0]
    assert (a100.gpu_model, a100.gpu_count, a100.vcpus, a100.memory_mib) == (
        "A100 (80 GB SXM4)",
        8,
        240,
        1843200,
    )
    assert a100.hourly_price == Decimal("14.32") and a100.price_source is PriceSource.API
    assert (a100.status, a100.region, a100.instance_type) == ("running", "us-east-1", "gpu_8x_a100_80gb_sxm4")
    assert (a100.host, a100.ip) == ("10-0-2-100.cloud.lambdalabs.com", "198.51.100.2")
    assert a100.created_at is None  # Lambda's API has no creation time
    assert a100.labels == {"team": "ml", "status_raw": "active", "private_ip": "10.0.2.100"}
    assert [i.status for i in instances[1:]] == ["pending", "terminated"]
    assert state.requests[0][1] == "/api/v1/instances"


async def test_catalog_fallback_when_price_not_embedded(session, fake) -> None:
    state, url = fake
    del state.instances[1]["instance_type"]["price_cents_per_hour"]
    instances = await make_adapter(session, url).instances()
    a10 = instances[1]
    assert a10.hourly_price == Decimal("0.75") and a10.price_source is PriceSource.CATALOG
    assert instances[0].price_source is PriceSource.API


async def test_estimates_from_observed_uptime_exact(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url, cache_ttl=0)  # each collection sees fresh data
    clock = Clock(T0)
    adapter.now = clock  # type: ignore[method-assign]
    first = await adapter.billing()
    assert {line.amount for line in first} == {Decimal("0")}  # first sight: nothing observed yet
    clock.at = T0 + timedelta(hours=2, minutes=30)
    state.instances[1]["status"] = "active"  # the A10 finished booting
    second = await adapter.billing()
    by_id = {line.resource_id: line for line in second}
    assert by_id["0920582c7ff041399e34823a0be62549"].amount == Decimal("35.800000")  # 14.32 x 2.5 h
    assert by_id["1a2b3c4d5e6f40718293a4b5c6d7e8f9"].amount == Decimal("0")  # first seen running now
    clock.at = T0 + timedelta(hours=3, minutes=30)
    third = {line.resource_id: line for line in await adapter.billing()}
    assert third["1a2b3c4d5e6f40718293a4b5c6d7e8f9"].amount == Decimal("0.750000")  # 0.75 x 1 h
    assert third["0920582c7ff041399e34823a0be62549"].amount == Decimal("50.120000")  # 14.32 x 3.5 h
    line = third["0920582c7ff041399e34823a0be62549"]
    assert line.kind is BillingKind.ESTIMATE and line.note == ESTIMATE_NOTE and line.currency == "USD"
    assert line.period_start == datetime(2024, 10, 1, tzinfo=UTC) and line.period_end == clock.at


def test_observed_uptime_resets_each_period() -> None:
    up = ObservedUptime()
    sep30 = datetime(2024, 9, 30, 23, 0, tzinfo=UTC)
    oct1 = datetime(2024, 10, 1, tzinfo=UTC)
    up.observe(["a"], sep30, datetime(2024, 9, 1, tzinfo=UTC))
    up.observe(["a"], oct1 + timedelta(hours=1), oct1)
    assert up.seconds() == {"a": 3600.0}  # only the part inside October counts
    up.observe([], oct1 + timedelta(hours=2), oct1)
    up.observe(["a"], oct1 + timedelta(hours=3), oct1)
    assert up.seconds() == {"a": 3600.0}  # stopped in between: no new time


async def test_prices_from_instance_types(session, fake) -> None:
    _, url = fake
    prices = {p.instance_type: p for p in await make_adapter(session, url).prices()}
    assert prices["gpu_1x_gh200"].hourly_price == Decimal("1.49")
    assert (prices["gpu_1x_gh200"].gpu_model, prices["gpu_1x_gh200"].memory_mib) == ("GH200 (96 GB)", 442368)
    assert prices["gpu_8x_a100_80gb_sxm4"].gpu_count == 8


async def test_429_honours_retry_after(session, fake) -> None:
    state, url = fake
    state.rate_limit_next = 2
    state.retry_after = 3
    adapter = make_adapter(session, url)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    assert len(await adapter.instances()) == 3
    assert sleeps.waits == [3.0, 3.0]


async def test_auth_failures(session, fake) -> None:
    state, url = fake
    with pytest.raises(ApiError) as info:
        await make_adapter(session, url, key="secret_wrong_key_99999").instances()
    text = str(info.value)
    assert text.startswith("401 from /api/v1/instances: token rejected")
    assert "secret_wrong_key_99999" not in text
    state.inactive_account = True
    with pytest.raises(ApiError, match="403 from /api/v1/instances: permission denied"):
        await make_adapter(session, url).instances()


async def test_cache_hit_within_ttl(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url)
    await adapter.instances()
    await adapter.instances()
    assert len(state.requests) == 1 and adapter.client.stats.cache_hits == 1


async def test_check_and_provider_failure(session, fake) -> None:
    state, url = fake
    ok = await make_adapter(session, url).check()
    assert [(r.name, r.ok, r.status) for r in ok] == [("instances", True, 200), ("instance_types", True, 200)]
    state.fail_next = [502, 502]
    bad = await make_adapter(session, url, max_tries=1).check()
    assert bad[0].ok is False and bad[0].status == 502 and "upstream failure" in bad[0].detail


def test_validate_api_config() -> None:
    assert [str(p) for p in LambdaAdapter.validate_api_config({"apikey": "x"}, "accounts[5].api")] == [
        "accounts[5].api.apikey: unknown key (did you mean 'api_key'?)",
        "accounts[5].api.api_key: required (or 'token'); use ${ENV_VAR} or api_key_file",
    ]
    assert LambdaAdapter.validate_api_config({"api_key": Secret("k" * 12), "timeout": "10s"}, "a.api") == []


def test_plugin_registers_adapter_as_lambda() -> None:
    from multicloud_collector.providers.lambda_cloud import plugin

    seen: list[type] = []
    plugin.register_providers(seen.append)
    assert seen == [LambdaAdapter] and LambdaAdapter.name == "lambda"


@given(st.integers(min_value=0, max_value=10_000_000))
def test_cents_to_dollars_exact(cents: int) -> None:
    price = instance_type_price({"price_cents_per_hour": cents})
    assert price is not None and price * 100 == cents
