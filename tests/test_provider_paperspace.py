"""Paperspace adapter against a local fake of the Paperspace API v1 (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fakes.paperspace import API_KEY, PaperspaceState, make_app
from fakes.server import FakeServer, Sleeps
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.providers.base import ESTIMATE_NOTE
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.paperspace import PaperspaceAdapter
from multicloud_collector.providers.paperspace.adapter import USAGE_RATE_NOTE, _next_page
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret

T0 = datetime(2024, 10, 5, 8, 0, tzinfo=UTC)




class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at




@pytest.fixture
async def fake() -> AsyncIterator[tuple[PaperspaceState, str]]:
    state = PaperspaceState()
    async with FakeServer(make_app(state)) as srv:
        yield state, srv.url


def make_adapter(
    session: aiohttp.ClientSession, url: str, key: str = API_KEY, **api: Any
) -> PaperspaceAdapter:
    account = AccountConfig(
        id="acme-ps",
        customer="acme",
        provider="paperspace",
        api={"api_key": Secret(key), "base_url": f"{url}/v1", **api},
    )
    return PaperspaceAdapter(account, session)


async def test_inventory_follows_cursor_pages(session, fake) -> None:
    state, url = fake
    machines = await make_adapter(session, url, page_limit=3).instances()
    assert len(machines) == 8
    afters = [q.get("after") for _, p, q in state.requests if p == "/v1/machines"]
    assert afters == [None, "pst0v3bc7", "psw0002aa"]
    by_name = {m.name: m for m in machines}
    a100 = by_name["a100-train"]
    assert (a100.gpu_model, a100.gpu_count, a100.vcpus, a100.memory_mib) == ("A100-80G", 1, 12, 92160)
    assert (a100.status, a100.region, a100.instance_type) == ("running", "East Coast (NY2)", "A100-80G")
    assert a100.hourly_price == Decimal("3.18") and a100.price_source is PriceSource.API
    assert a100.labels["price_basis"] == USAGE_RATE_NOTE
    assert a100.created_at == datetime(2024, 10, 1, 6, 0, tzinfo=UTC)
    assert (a100.ip, a100.labels["private_ip"]) == ("184.105.3.20", "10.64.2.15")
    h100 = by_name["h100x8-train"]
    assert (h100.gpu_model, h100.gpu_count, h100.status) == ("H100", 8, "pending")
    cpu = by_name["notebook-cpu"]
    assert (cpu.gpu_count, cpu.gpu_model, cpu.status, cpu.ip) == (0, "", "stopped", "")


async def test_configured_prices_win_and_deleted_is_terminated(session, fake) -> None:
    state, url = fake
    state.machines[2]["dtDeleted"] = "2024-10-03T00:00:00.000Z"
    machines = await make_adapter(session, url, hourly_prices={"P4000": "0.51", "A100-80G": 3}).instances()
    p4000 = next(m for m in machines if m.instance_type == "P4000")
    assert p4000.hourly_price == Decimal("0.51") and p4000.price_source is PriceSource.CONFIG
    assert "price_basis" not in p4000.labels
    assert next(m for m in machines if m.name == "notebook-cpu").status == "terminated"


async def test_estimates_from_observed_uptime(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url, cache_ttl=0)
    clock = Clock(T0)
    adapter.now = clock  # type: ignore[method-assign]
    await adapter.billing()
    clock.at = T0 + timedelta(minutes=45)
    state.machines[1]["state"] = "ready"  # the H100 box came up; it is billed from here on
    await adapter.billing()
    clock.at = T0 + timedelta(hours=1, minutes=45)
    lines = {line.resource_id: line for line in await adapter.billing()}
    assert lines["psq2h5xz9"].amount == Decimal("5.565000")  # 3.18 x 1.75 h
    assert lines["psr8k1mn2"].amount == Decimal("47.600000")  # 47.60 x 1 h
    assert lines["pst0v3bc7"].amount == Decimal("0")  # off
    total = sum((line.amount for line in lines.values()), Decimal(0))
    assert total == Decimal("5.565000") + Decimal("47.600000") + 5 * Decimal("0.51") * Decimal("1.75")
    assert all(line.kind is BillingKind.ESTIMATE and line.note == ESTIMATE_NOTE for line in lines.values())
    assert all(line.currency == "USD" for line in lines.values())
    assert state.requests[0][1] == "/v1/billing/account-standing"


async def test_account_not_in_good_standing_still_estimates(session, fake) -> None:
    state, url = fake
    state.standing["isInGoodStanding"] = False
    lines = await make_adapter(session, url).billing()
    assert len(lines) == 8


async def test_429_honours_retry_after(session, fake) -> None:
    state, url = fake
    state.rate_limit_next = 1
    adapter = make_adapter(session, url)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    assert len(await adapter.instances()) == 8
    assert sleeps.waits == [4.0]


async def test_auth_errors(session, fake) -> None:
    state, url = fake
    with pytest.raises(ApiError) as info:
        await make_adapter(session, url, key="ps-wrong-key-0000").instances()
    assert str(info.value).startswith("401 from /v1/machines: token rejected")
    assert "You are not authorized" in str(info.value)
    state.forbidden = True
    with pytest.raises(ApiError, match="403 from /v1/machines: permission denied"):
        await make_adapter(session, url).instances()


async def test_cache_hit_within_ttl(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url)
    await adapter.instances()
    n = len(state.requests)
    await adapter.instances()
    assert len(state.requests) == n and adapter.client.stats.cache_hits == 1


async def test_check(session, fake) -> None:
    state, url = fake
    results = await make_adapter(session, url).check()
    assert [(r.name, r.ok) for r in results] == [("machines", True), ("account_standing", True)]
    state.fail_next = [500]
    results = await make_adapter(session, url, max_tries=1).check()
    assert (results[0].ok, results[0].status, results[1].ok) == (False, 500, True)


def test_validate_api_config() -> None:
    api = {"api_key": Secret("k" * 16), "hourly_prices": {"A100": "abc", "P4000": -1}, "page_limit": 500}
    assert [str(p) for p in PaperspaceAdapter.validate_api_config(api, "accounts[2].api")] == [
        "accounts[2].api.hourly_prices.A100: expected a price >= 0, got 'abc'",
        "accounts[2].api.hourly_prices.P4000: expected a price >= 0, got -1",
        "accounts[2].api.page_limit: must be an integer from 1 to 120",
    ]
    bad = PaperspaceAdapter.validate_api_config({"api_key": Secret("k" * 16), "hourly_prices": [1]}, "x.api")
    assert [str(p) for p in bad] == ["x.api.hourly_prices: expected a mapping of machine type to price"]


def test_plugin_registers_adapter() -> None:
    from multicloud_collector.providers.paperspace import plugin

    seen: list[type] = []
    plugin.register_providers(seen.append)
    assert seen == [PaperspaceAdapter]


@given(st.booleans(), st.one_of(st.none(), st.text(max_size=10)))
def test_next_page_only_when_has_more(has_more: bool, cursor: str | None) -> None:
    result = _next_page({"hasMore": has_more, "nextPage": cursor})
    assert result == (cursor if has_more and cursor else None)
