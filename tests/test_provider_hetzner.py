"""Hetzner Cloud adapter against a local fake of the Hetzner Cloud API (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fakes.hetzner import TOKEN, HetznerState, make_app
from fakes.server import FakeServer, Sleeps
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.providers.base import ESTIMATE_NOTE
from multicloud_collector.providers.hetzner import HetznerAdapter
from multicloud_collector.providers.hetzner.adapter import location_price
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret

NOW = datetime(2024, 10, 3, 6, 0, tzinfo=UTC)






@pytest.fixture
async def fake() -> AsyncIterator[tuple[HetznerState, str]]:
    state = HetznerState()
    async with FakeServer(make_app(state)) as srv:
        yield state, srv.url


def make_adapter(session: aiohttp.ClientSession, url: str, token: str = TOKEN, **api: Any) -> HetznerAdapter:
    account = AccountConfig(
        id="acme-hcloud",
        customer="acme",
        provider="hetzner",
        api={"token": Secret(token), "base_url": f"{url}/v1", **api},
    )
    adapter = HetznerAdapter(account, session)
    adapter.now = lambda: NOW  # type: ignore[method-assign]
    return adapter


async def test_inventory_spans_pages_with_location_prices(session, fake) -> None:
    state, url = fake
    servers = await make_adapter(session, url).instances()
    assert len(servers) == 64
    assert [q["page"] for _, p, q in state.requests if p == "/v1/servers"] == ["1", "2"]
    assert all(q["per_page"] == "50" for _, p, q in state.requests if p == "/v1/servers")
    by_name = {s.name: s for s in servers}
    gpu = by_name["train-gpu-01"]
    assert (gpu.gpu_model, gpu.gpu_count) == ("NVIDIA-L4", 1)
    assert (gpu.vcpus, gpu.memory_mib, gpu.instance_type) == (48, 196608, "ccx63")
    assert gpu.hourly_price == Decimal("0.5710000000") and gpu.currency == "EUR"
    assert gpu.price_source is PriceSource.API
    assert (gpu.region, gpu.zone, gpu.ip, gpu.host) == ("fsn1", "fsn1-dc14", "203.0.113.42", "train-gpu-01")
    assert gpu.created_at == datetime(2024, 10, 1, 6, 0, tzinfo=UTC)
    assert gpu.labels["team"] == "ml" and gpu.labels["network_zone"] == "eu-central"
    web = by_name["web-01"]
    assert web.status == "stopped" and web.labels["status_raw"] == "off" and web.gpu_count == 0
    assert web.hourly_price == Decimal("0.0060000000") and web.region == "nbg1"


async def test_gross_prices_and_label_selector(session, fake) -> None:
    state, url = fake
    servers = await make_adapter(session, url, price_basis="gross", label_selector="team=ml").instances()
    assert {s.hourly_price for s in servers if s.name == "train-gpu-01"} == {Decimal("0.6794900000000000")}
    assert all(q.get("label_selector") == "team=ml" for _, p, q in state.requests if p == "/v1/servers")


async def test_estimates_are_price_times_uptime(session, fake) -> None:
    _, url = fake
    lines = await make_adapter(session, url).billing()
    assert all(line.kind is BillingKind.ESTIMATE and line.note == ESTIMATE_NOTE for line in lines)
    assert all(line.currency == "EUR" for line in lines)
    by_id = {line.resource_id: line for line in lines}
    # created 2024-10-01T06:00Z, running: 48 h by NOW at 0.571 EUR/h
    assert by_id["42"].amount == Decimal("27.408000")
    assert by_id["42"].period_start == datetime(2024, 10, 1, tzinfo=UTC) and by_id["42"].period_end == NOW
    assert by_id["43"].amount == Decimal("0")  # off
    # created before the month: whole 54 h of October so far at 0.006 EUR/h
    assert by_id["44"].amount == Decimal("0.324000")


async def test_prices_per_location(session, fake) -> None:
    _, url = fake
    prices = await make_adapter(session, url).prices()
    keyed = {(p.instance_type, p.region): p for p in prices}
    assert len(prices) == 5
    cx = keyed[("cx22", "ash")]
    assert (cx.hourly_price, cx.monthly_price, cx.currency) == (
        Decimal("0.0080000000"),
        Decimal("4.9900000000"),
        "EUR",
    )
    assert keyed[("ccx63", "hel1")].memory_mib == 196608


async def test_429_waits_until_ratelimit_reset(session, fake) -> None:
    state, url = fake
    state.rate_limit_next = 1
    state.reset_in = 9
    adapter = make_adapter(session, url)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    assert len(await adapter.instances()) == 64
    assert len(sleeps.waits) == 1
    assert 7.0 < sleeps.waits[0] <= 9.0  # RateLimit-Reset is an epoch second: wait until then
    assert adapter.client.stats.rate_limited == 1


async def test_auth_failures_name_status_and_path(session, fake) -> None:
    state, url = fake
    with pytest.raises(ApiError) as info:
        await make_adapter(session, url, token="not-the-token-000").instances()
    assert str(info.value).startswith("401 from /v1/pricing: token rejected")
    assert "unable to authenticate" in str(info.value)
    state.readonly_forbidden = True
    with pytest.raises(ApiError, match="403 from /v1/pricing: permission denied"):
        await make_adapter(session, url).instances()


async def test_cache_hit_within_ttl(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url)
    await adapter.instances()
    calls = len(state.requests)
    await adapter.billing()  # billing re-reads servers and pricing: all from the cache
    assert len(state.requests) == calls
    assert adapter.client.stats.cache_hits >= 3


async def test_check(session, fake) -> None:
    state, url = fake
    results = await make_adapter(session, url).check()
    assert [(r.name, r.ok) for r in results] == [("servers", True), ("pricing", True)]
    state.fail_next = [404]
    results = await make_adapter(session, url, max_tries=1).check()
    assert results[0].ok is False and results[0].status == 404
    assert results[0].detail.startswith("404 from /v1/servers")


def test_validate_api_config() -> None:
    problems = HetznerAdapter.validate_api_config(
        {"token": Secret("abcdefgh"), "price_basis": "brutto", "label_selector": 3}, "accounts[0].api"
    )
    assert [str(p) for p in problems] == [
        "accounts[0].api.price_basis: must be one of net, gross (got 'brutto')",
        "accounts[0].api.label_selector: expected a string like 'env=prod'",
    ]
    missing = HetznerAdapter.validate_api_config({}, "accounts[1].api")
    assert str(missing[0]).startswith("accounts[1].api.token: required")


def test_plugin_registers_adapter() -> None:
    from multicloud_collector.providers.hetzner import plugin

    seen: list[type] = []
    plugin.register_providers(seen.append)
    assert seen == [HetznerAdapter]


@given(st.decimals(min_value=0, max_value=100, places=10), st.sampled_from(["fsn1", "nbg1", "hel1"]))
def test_location_price_picks_exact_location(amount: Decimal, location: str) -> None:
    prices = [
        {"location": loc, "price_hourly": {"net": str(amount) if loc == location else "999"}}
        for loc in ("fsn1", "nbg1", "hel1")
    ]
    assert location_price(prices, location, "net") == amount
    assert location_price(prices, "ash", "net") is None
