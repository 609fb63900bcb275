"""Linode adapter against a local fake of the Linode API v4 (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fakes.linode import TOKEN, LinodeState, make_app
from fakes.server import FakeServer, Sleeps
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.plugins.manager import build_plugin_manager
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.linode import LinodeAdapter
from multicloud_collector.providers.linode.adapter import gpu_model_from_label, hourly_price_for
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret

NOW = datetime(2024, 10, 20, 12, 0, tzinfo=UTC)






@pytest.fixture
async def fake() -> AsyncIterator[tuple[LinodeState, str]]:
    state = LinodeState()
    async with FakeServer(make_app(state)) as srv:
        yield state, srv.url


def make_adapter(session: aiohttp.ClientSession, url: str, token: str = TOKEN, **api: Any) -> LinodeAdapter:
    account = AccountConfig(
        id="acme-linode",
        customer="acme",
        provider="linode",
        api={"token": Secret(token), "base_url": f"{url}/v4", **api},
    )
    adapter = LinodeAdapter(account, session)
    adapter.now = lambda: NOW  # type: ignore[method-assign]
    return adapter


async def test_inventory_spans_pages_and_joins_region_prices(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url, page_size=25)
    instances = await adapter.instances()
    assert len(instances) == 30
    instance_pages = [q["page"] for m, p, q in state.requests if p == "/v4/linode/instances"]
    assert instance_pages == ["1", "2"]
    by_name = {i.name: i for i in instances}
    gpu = by_name["gpu-train-1"]
    assert (gpu.gpu_model, gpu.gpu_count, gpu.vcpus, gpu.memory_mib) == ("RTX6000", 2, 16, 65536)
    assert gpu.hourly_price == Decimal("3.0") and gpu.currency == "USD"
    assert gpu.price_source is PriceSource.CATALOG
    assert gpu.status == "running" and gpu.labels["status_raw"] == "running"
    assert gpu.created_at == datetime(2024, 9, 1, 8, 0, tzinfo=UTC)
    assert (gpu.host, gpu.ip, gpu.region, gpu.instance_id) == (
        "gpu-train-1",
        "198.51.100.11",
        "us-east",
        "1001",
    )
    assert gpu.labels["tags"] == "ml,team-a"
    assert by_name["gpu-infer-1"].status == "stopped"
    jakarta = by_name["web-jakarta"]
    assert jakarta.status == "pending" and jakarta.gpu_count == 0 and jakarta.gpu_model == ""
    assert jakarta.hourly_price == Decimal("0.043")  # region_prices override of the 0.036 base price
    assert by_name["web-4"].hourly_price == Decimal("0.036")
    await adapter.close()


async def test_billing_balance_pending_and_invoice_items_exact(session, fake) -> None:
    _, url = fake
    lines = await make_adapter(session, url).billing()
    kinds = [line.kind for line in lines]
    assert kinds.count(BillingKind.BALANCE) == 1 and kinds.count(BillingKind.PENDING) == 1
    balance = next(line for line in lines if line.kind is BillingKind.BALANCE)
    assert balance.amount == Decimal("12.5") and balance.currency == "USD"
    pending = next(line for line in lines if line.kind is BillingKind.PENDING)
    assert pending.amount == Decimal("145.35")
    assert pending.period_start == datetime(2024, 10, 1, tzinfo=UTC) and pending.period_end == NOW
    assert pending.line_id == "uninvoiced:2024-10"
    items = [line for line in lines if line.kind is BillingKind.INVOICE_ITEM]
    by_invoice: dict[str, Decimal] = {}
    for item in items:
        invoice = item.line_id.split(":")[1]
        by_invoice[invoice] = by_invoice.get(invoice, Decimal(0)) + item.amount
    # item totals add up exactly (no float drift) to each invoice's total
    assert by_invoice == {"9001": Decimal("1082.000"), "9000": Decimal("25.932")}
    first = next(i for i in items if i.line_id == "invoice:9001:0")
    assert first.period_start == datetime(2024, 9, 1, tzinfo=UTC)
    assert "[us-east]" in first.description and "360 x 3.00" in first.note
    assert len({i.line_id for i in items}) == len(items)


async def test_invoice_window_skips_old_invoices(session, fake) -> None:
    state, url = fake
    lines = await make_adapter(session, url, invoice_days=30).billing()
    assert {line.line_id.split(":")[1] for line in lines if line.kind is BillingKind.INVOICE_ITEM} == {"9001"}
    assert "/v4/account/invoices/9000/items" not in [p for _, p, _ in state.requests]


async def test_prices_include_region_overrides(session, fake) -> None:
    _, url = fake
    prices = await make_adapter(session, url).prices()
    keyed = {(p.instance_type, p.region): p for p in prices}
    assert keyed[("g6-standard-2", "")].hourly_price == Decimal("0.036")
    assert keyed[("g6-standard-2", "br-gru")].monthly_price == Decimal("33.6")
    gpu = keyed[("g1-gpu-rtx6000-1", "")]
    assert (gpu.gpu_model, gpu.gpu_count, gpu.monthly_price) == ("RTX6000", 1, Decimal("1000.0"))


async def test_429_waits_for_retry_after(session, fake) -> None:
    state, url = fake
    state.rate_limit_next = 1
    state.retry_after = 7
    adapter = make_adapter(session, url)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    instances = await adapter.instances()
    assert len(instances) == 30
    assert sleeps.waits == [7.0]
    assert adapter.client.stats.rate_limited == 1


async def test_bad_token_gives_clear_error(session, fake) -> None:
    _, url = fake
    adapter = make_adapter(session, url, token="wrong-token-123456")
    with pytest.raises(ApiError) as info:
        await adapter.instances()
    assert info.value.status == 401
    assert str(info.value).startswith("401 from /v4/linode/types: token rejected")
    assert "wrong-token-123456" not in str(info.value)


async def test_server_errors_are_retried_then_reported(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url, max_tries=2)
    adapter.client.sleep = Sleeps()
    state.fail_next = [503]
    assert len(await adapter.instances()) == 30  # one 503, then success
    state.fail_next = [404]
    with pytest.raises(ApiError, match="404 from /v4/account"):
        await adapter.billing()


async def test_cache_hit_within_ttl(session, fake) -> None:
    state, url = fake
    adapter = make_adapter(session, url)
    first = await adapter.instances()
    calls = len(state.requests)
    second = await adapter.instances()
    assert first == second
    assert len(state.requests) == calls
    assert adapter.client.stats.cache_hits >= 2
    uncached = make_adapter(session, url, cache_ttl=0)
    await uncached.instances()
    await uncached.instances()
    assert len(state.requests) > calls + 2


async def test_check_reports_each_endpoint(session, fake) -> None:
    _, url = fake
    results = await make_adapter(session, url).check()
    assert [(r.name, r.ok, r.status) for r in results] == [
        ("account", True, 200),
        ("instances", True, 200),
        ("types", True, 200),
    ]
    bad = await make_adapter(session, url, token="nope-nope-nope").check()
    assert all(not r.ok and r.status == 401 for r in bad)
    assert bad[0].detail.startswith("401 from /v4/account: token rejected")


def test_validate_api_config_messages() -> None:
    path = "accounts[3].api"
    problems = LinodeAdapter.validate_api_config({"page_size": 10, "invoice_days": -1, "colour": 1}, path)
    texts = sorted(str(p) for p in problems)
    assert "accounts[3].api.page_size: must be an integer from 25 to 500" in texts
    assert "accounts[3].api.invoice_days: must be an integer >= 0" in texts
    assert "accounts[3].api.colour: unknown key" in texts
    assert any(t.startswith("accounts[3].api.token: required") for t in texts)
    assert LinodeAdapter.validate_api_config({"token": Secret("x" * 10), "page_size": 100}, path) == []


def test_registered_through_plugin_hook() -> None:
    from multicloud_collector.providers.linode import plugin

    seen: list[type] = []
    plugin.register_providers(seen.append)
    assert seen == [LinodeAdapter]
    pm = build_plugin_manager(
        False, default_plugins=("multicloud_collector.providers.linode.plugin",), env={}
    )
    got: list[type] = []
    pm.hook.register_providers(register=got.append)
    assert got == [LinodeAdapter]


@given(st.decimals(min_value=0, max_value=1000, places=3), st.sampled_from(["us-east", "id-cgk", "br-gru"]))
def test_region_price_override_property(base: Decimal, region: str) -> None:
    t = {"price": {"hourly": str(base)}, "region_prices": [{"id": "id-cgk", "hourly": "9.99"}]}
    expected = Decimal("9.99") if region == "id-cgk" else base
    assert hourly_price_for(t, region) == expected


@given(st.text(max_size=40))
def test_gpu_label_parser_never_crashes(label: str) -> None:
    assert isinstance(gpu_model_from_label(label), str)
    assert gpu_model_from_label("Dedicated 32GB + RTX6000 GPU x1") == "RTX6000"


async def test_odd_payloads_are_tolerated(session, fake) -> None:
    state, url = fake
    state.instances.append(
        {
            "id": 2000,
            "label": "lke-node",
            "region": "us-east",
            "type": "g7-retired",
            "status": "deleting",
            "group": "legacy",
            "lke_cluster_id": 77,
            "ipv4": ["192.168.1.5"],
            "specs": None,
        }
    )
    state.invoice_items[9001] += [
        {"label": "Credit adjustment", "type": "misc", "amount": -2.5, "from": None, "to": None},
        {"label": "no money at all", "type": "misc"},
    ]
    node = next(i for i in await make_adapter(session, url).instances() if i.instance_id == "2000")
    assert (node.status, node.hourly_price, node.price_source, node.ip) == (
        "terminated",
        None,
        PriceSource.NONE,
        "",
    )
    assert (node.labels["group"], node.labels["lke_cluster_id"], node.vcpus) == ("legacy", "77", None)
    lines = await make_adapter(session, url).billing()
    credit = next(line for line in lines if line.description == "Credit adjustment")
    assert credit.amount == Decimal("-2.5")  # no total: falls back to amount
    assert credit.period_start == credit.period_end == datetime(2024, 10, 1, tzinfo=UTC)  # invoice date
    assert not any(line.description == "no money at all" for line in lines)
