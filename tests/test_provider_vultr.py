"""Vultr adapter against the local Vultr fake: inventory across pages, billing, 429, auth, cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest
from fakes.server import FakeServer, Sleeps
from fakes.vultr import GPU_PLAN, H100_PLAN, VultrFake

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.plugins.manager import BUILTIN_PACKAGE, Registry, build_plugin_manager
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.providers.vultr import VultrAdapter
from multicloud_collector.secrets import Secret

TOKEN = "vultr-test-key-0123456789"




@pytest.fixture
async def fake() -> AsyncIterator[tuple[VultrFake, FakeServer]]:
    api = VultrFake(token=TOKEN)
    async with FakeServer(api) as srv:
        yield api, srv


def adapter(srv: FakeServer, session: aiohttp.ClientSession, **api: object) -> VultrAdapter:
    settings: dict[str, object] = {"api_key": Secret(TOKEN), "base_url": srv.url + "/v2", **api}
    return VultrAdapter(
        AccountConfig(id="acme-vultr", customer="acme", provider="vultr", api=settings), session
    )


async def test_inventory_across_pages_with_plan_prices(fake: tuple[VultrFake, FakeServer], session) -> None:
    api, srv = fake
    api.state.page_size = 2
    found = await adapter(srv, session).instances()
    assert [i.name for i in found] == [f"vultr-node-{n}" for n in range(1, 6)] + ["metal-1"]
    assert api.state.count("/v2/instances") == 3  # 5 instances, 2 per page
    gpu = found[0]
    assert (gpu.provider, gpu.account, gpu.instance_id) == (
        "vultr",
        "acme-vultr",
        "cb676a46-66fd-4dfb-b839-443141010001",
    )
    assert (gpu.region, gpu.instance_type, gpu.status, gpu.gpu_model, gpu.gpu_count) == (
        "ewr",
        GPU_PLAN,
        "running",
        "NVIDIA_A100",
        1,
    )
    assert gpu.hourly_price == Decimal("1750.2") / Decimal(730)
    assert gpu.price_source is PriceSource.CATALOG and gpu.currency == "USD"
    assert (gpu.vcpus, gpu.memory_mib, gpu.host, gpu.ip) == (12, 122880, "vultr-node-1", "192.0.2.11")
    assert gpu.created_at == datetime(2024, 2, 10, 1, 56, 20, tzinfo=UTC)
    assert (
        gpu.labels["gpu_vram_gb"] == "80"
        and gpu.labels["tags"] == "gpu"
        and gpu.labels["status_raw"] == "active"
    )
    assert found[2].instance_type == H100_PLAN and found[2].hourly_price == Decimal(7)
    assert [i.status for i in found[3:]] == ["stopped", "pending", "running"]
    metal = found[5]
    assert (metal.memory_mib, metal.vcpus, metal.labels["kind"]) == (32768, 4, "bare_metal")
    assert metal.hourly_price == Decimal("120") / Decimal(730)


async def test_hours_per_month_and_no_bare_metal(fake: tuple[VultrFake, FakeServer], session) -> None:
    api, srv = fake
    found = await adapter(srv, session, hours_per_month=672, bare_metal=False).instances()
    assert len(found) == 5 and found[2].hourly_price == Decimal(5110) / Decimal(672)
    assert api.state.count("/v2/bare-metals") == 0


async def test_billing_decimal_lines(fake: tuple[VultrFake, FakeServer], session) -> None:
    _, srv = fake
    lines = await adapter(srv, session).billing()
    by_kind: dict[BillingKind, list[Decimal]] = {}
    for line in lines:
        by_kind.setdefault(line.kind, []).append(line.amount)
        assert line.currency == "USD" and line.provider == "vultr" and line.account == "acme-vultr"
    assert by_kind[BillingKind.BALANCE] == [Decimal("-100.55")]
    assert by_kind[BillingKind.PENDING] == [Decimal("60.25"), Decimal("517.75"), Decimal("25.7")]
    assert sum(by_kind[BillingKind.INVOICE_ITEM], Decimal(0)) == Decimal("1203.1")
    pending_item = next(ln for ln in lines if ln.amount == Decimal("517.75"))
    assert pending_item.period_start == datetime(2024, 6, 1, tzinfo=UTC)
    assert (
        pending_item.description == "192.0.2.11 (122880 MB) [vultr-node-1]"
        and pending_item.resource_id == "Cloud GPU"
    )
    ids = [ln.line_id for ln in lines]
    assert len(set(ids)) == len(ids)
    again = await adapter(srv, session, cache_ttl=0).billing()
    assert [ln.line_id for ln in again] == ids  # restatements keep their ids


async def test_billing_without_pending_route_or_invoices(fake: tuple[VultrFake, FakeServer], session) -> None:
    api, srv = fake
    api.has_pending_route = False
    lines = await adapter(srv, session, invoices=0).billing()
    assert [ln.kind for ln in lines] == [BillingKind.BALANCE, BillingKind.PENDING]


async def test_billing_other_errors_propagate(fake: tuple[VultrFake, FakeServer], session) -> None:
    api, srv = fake
    vultr = adapter(srv, session)
    await vultr.client.get_json("/account")  # cached: the next failure hits pending-charges
    api.state.fail_next = (403, {"error": "Unauthorized IP address", "status": 403})
    with pytest.raises(ApiError, match=r"^403 from /v2/billing/pending-charges: permission denied"):
        await vultr.billing()


async def test_retries_after_429_honouring_the_wait(fake: tuple[VultrFake, FakeServer], session) -> None:
    api, srv = fake
    vultr = adapter(srv, session)
    waits = Sleeps()
    vultr.client.sleep = waits
    api.state.retry_after = 2.0
    api.state.rate_limit_next = 2
    assert len(await vultr.instances()) == 6
    assert waits.waits == [2.0, 2.0] and vultr.client.stats.rate_limited == 2
    api.state.retry_after = None  # Vultr's documented 429 has no headers: jittered backoff
    api.state.rate_limit_next = 1
    vultr.client.clear_cache()
    await vultr.instances()
    assert len(waits.waits) == 3 and 0 <= waits.waits[-1] <= 0.5


async def test_auth_failure_is_a_clear_error(fake: tuple[VultrFake, FakeServer], session) -> None:
    _, srv = fake
    bad = adapter(srv, session, api_key=Secret("not-the-key-xyz"))
    with pytest.raises(ApiError) as err:
        await bad.instances()
    assert str(err.value) == "401 from /v2/instances: token rejected (Invalid API token)"
    assert err.value.is_auth and "not-the-key-xyz" not in str(err.value)


async def test_cache_hits_within_ttl(fake: tuple[VultrFake, FakeServer], session) -> None:
    api, srv = fake
    vultr = adapter(srv, session, cache_ttl="5m")
    first = await vultr.instances()
    calls = len(api.state.requests)
    assert await vultr.instances() == first
    assert len(api.state.requests) == calls and vultr.client.stats.cache_hits >= 4
    await vultr.close()  # clears the cache
    await vultr.instances()
    assert len(api.state.requests) == 2 * calls


async def test_prices(fake: tuple[VultrFake, FakeServer], session) -> None:
    _, srv = fake
    prices = await adapter(srv, session).prices()
    a100 = [p for p in prices if p.instance_type == GPU_PLAN]
    assert [p.region for p in a100] == ["ewr", "sjc"]
    assert a100[0].monthly_price == Decimal("1750.2") and a100[0].gpu_model == "NVIDIA_A100"
    assert any(p.instance_type == "vbm-4c-32gb" and p.vcpus == 4 for p in prices)


async def test_check(fake: tuple[VultrFake, FakeServer], session) -> None:
    _, srv = fake
    results = await adapter(srv, session).check()
    assert [(r.name, r.ok) for r in results] == [("account", True), ("instances", True), ("billing", True)]
    failed = await adapter(srv, session, api_key=Secret("wrong-key-abc")).check()
    assert failed[0].detail == "401 from /v2/account: token rejected (Invalid API token)" and not failed[0].ok


def test_validate_api_config() -> None:
    ok = {
        "api_key": Secret(TOKEN),
        "hours_per_month": 672,
        "bare_metal": False,
        "invoices": 2,
        "page_size": 50,
    }
    assert VultrAdapter.validate_api_config(ok, "accounts[0].api") == []
    bad = {"hours_per_month": 0, "bare_metal": "yes", "invoices": -1, "page_size": 501}
    assert [str(p) for p in VultrAdapter.validate_api_config(bad, "accounts[1].api")] == [
        "accounts[1].api.api_key: required (or 'token'); use ${ENV_VAR} or api_key_file",
        "accounts[1].api.hours_per_month: must be an integer 1-744",
        "accounts[1].api.bare_metal: expected true or false",
        "accounts[1].api.invoices: must be an integer >= 0 (latest invoices to itemize)",
        "accounts[1].api.page_size: must be an integer 1-500",
    ]


def test_registered_as_builtin_plugin() -> None:
    registry = Registry(build_plugin_manager(load_entrypoints=False))
    assert registry.adapters["vultr"] is VultrAdapter
    assert registry.adapter_origin("vultr").package == BUILTIN_PACKAGE
