"""DigitalOcean adapter against the local fake: droplets + GPU droplets across pages, billing, 429, auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest
from fakes.digitalocean import DigitalOceanFake
from fakes.server import FakeServer, Sleeps

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.plugins.manager import Registry, build_plugin_manager
from multicloud_collector.providers.digitalocean import DigitalOceanAdapter
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret

TOKEN = "dop_v1_test_0123456789abcdef"




@pytest.fixture
async def fake() -> AsyncIterator[tuple[DigitalOceanFake, FakeServer]]:
    api = DigitalOceanFake(token=TOKEN)
    async with FakeServer(api) as srv:
        yield api, srv


def adapter(srv: FakeServer, session: aiohttp.ClientSession, **api: object) -> DigitalOceanAdapter:
    settings: dict[str, object] = {"token": Secret(TOKEN), "base_url": srv.url + "/v2", **api}
    return DigitalOceanAdapter(
        AccountConfig(id="acme-do", customer="acme", provider="digitalocean", api=settings), session
    )


async def test_droplets_and_gpu_droplets_across_pages(
    fake: tuple[DigitalOceanFake, FakeServer], session
) -> None:
    api, srv = fake
    api.state.page_size = 2
    found = await adapter(srv, session).instances()
    assert [i.name for i in found] == [f"do-node-{n}" for n in (1, 2, 3, 4, 5, 11, 12, 13)]
    gpu_pages = [r for r in api.state.requests if r.query.get("type") == "gpus"]
    assert len(gpu_pages) == 2 and api.state.count("/v2/droplets") == 5  # 3 + 2 pages
    assert [i.status for i in found[:5]] == ["running", "running", "stopped", "pending", "terminated"]
    h100 = found[6]
    assert (h100.instance_id, h100.region, h100.instance_type) == ("3164452", "tor1", "gpu-h100x8-640gb")
    assert (h100.gpu_model, h100.gpu_count, h100.vcpus, h100.memory_mib) == ("nvidia_h100", 8, 160, 1966080)
    assert h100.hourly_price == Decimal("23.92") and h100.price_source is PriceSource.API
    assert (h100.host, h100.ip, h100.labels["private_ip"]) == ("do-node-12", "203.0.113.12", "10.128.0.12")
    assert h100.labels["gpu_vram"] == "640 gib" and h100.labels["tags"] == "gpu,train"
    assert h100.created_at == datetime(2024, 3, 4, 18, 37, 44, tzinfo=UTC)
    assert found[0].hourly_price == Decimal("0.00893") and found[0].gpu_count == 0


async def test_tag_filter_skips_the_gpu_listing(fake: tuple[DigitalOceanFake, FakeServer], session) -> None:
    api, srv = fake
    found = await adapter(srv, session, tag_name="train").instances()
    assert [i.name for i in found] == ["do-node-11", "do-node-12", "do-node-13"]
    assert all("type" not in r.query for r in api.state.requests)
    plain = await adapter(srv, session, gpu_droplets=False).instances()
    assert len(plain) == 5


async def test_billing_lines_decimal(fake: tuple[DigitalOceanFake, FakeServer], session) -> None:
    _, srv = fake
    lines = await adapter(srv, session).billing()
    kinds = [(ln.kind, ln.amount) for ln in lines]
    assert kinds[:3] == [
        (BillingKind.BALANCE, Decimal("12.23")),
        (BillingKind.USAGE, Decimal("11.21")),
        (BillingKind.PENDING, Decimal("23.45")),
    ]
    items = [ln for ln in lines if ln.kind is BillingKind.INVOICE_ITEM]
    assert sum((ln.amount for ln in items), Decimal(0)) == Decimal("2611.16")
    assert all(ln.currency == "USD" for ln in lines)
    gpu = items[0]
    assert (
        gpu.resource_id == "711157cb-37c8-4817-b371-44fa3504a39c"
        and gpu.description == "Droplets: gpu-h100x1-80gb"
    )
    assert (gpu.period_start, gpu.period_end) == (
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(2024, 6, 1, tzinfo=UTC),
    )
    preview = lines[2]
    assert preview.line_id == "preview:2024-06" and preview.period_start == datetime(2024, 6, 1, tzinfo=UTC)
    assert lines[0].line_id == "balance:2024-06-10"
    assert len({ln.line_id for ln in lines}) == len(lines)


async def test_more_invoices_and_missing_invoice(fake: tuple[DigitalOceanFake, FakeServer], session) -> None:
    _, srv = fake
    with pytest.raises(
        ApiError, match=r"^404 from /v2/customers/my/invoices/fe0b3ef5-6d4c-4b6c-8a3e-2d3d2c3d3e3f: not found"
    ):
        await adapter(srv, session, invoices=2).billing()
    none = await adapter(srv, session, invoices=0).billing()
    assert [ln.kind for ln in none] == [BillingKind.BALANCE, BillingKind.USAGE, BillingKind.PENDING]


async def test_429_honours_retry_after(fake: tuple[DigitalOceanFake, FakeServer], session) -> None:
    api, srv = fake
    do = adapter(srv, session, max_retry_wait="30s")
    waits = Sleeps()
    do.client.sleep = waits
    api.state.retry_after = 4
    api.state.rate_limit_next = 1
    assert len(await do.instances()) == 8
    assert waits.waits == [4.0]
    api.state.retry_after = None  # hourly limit: only ratelimit-reset (an hour away): capped
    api.state.rate_limit_next = 1
    do.client.clear_cache()
    await do.instances()
    assert waits.waits[1] == 30.0 and do.client.stats.rate_limited == 2


async def test_auth_failure(fake: tuple[DigitalOceanFake, FakeServer], session) -> None:
    _, srv = fake
    bad = adapter(srv, session, token=Secret("dop_v1_wrong_token"))
    with pytest.raises(ApiError) as err:
        await bad.instances()
    assert str(err.value) == "401 from /v2/droplets: token rejected (Unable to authenticate you.)"
    results = await bad.check()
    assert results[0].detail == "401 from /v2/account: token rejected (Unable to authenticate you.)"
    assert [r.ok for r in await adapter(srv, session).check()] == [True, True, True]


async def test_server_error_then_recovery(fake: tuple[DigitalOceanFake, FakeServer], session) -> None:
    api, srv = fake
    do = adapter(srv, session)
    do.client.sleep = Sleeps()
    api.state.fail_next = (
        500,
        {"id": "server_error", "message": "Server was unable to give you a response."},
    )
    api.state.fail_times = 2
    assert len(await do.instances()) == 8 and do.client.stats.retries == 2


async def test_cache_within_ttl(fake: tuple[DigitalOceanFake, FakeServer], session) -> None:
    api, srv = fake
    do = adapter(srv, session)
    await do.instances()
    calls = len(api.state.requests)
    await do.instances()
    assert len(api.state.requests) == calls and do.client.stats.cache_hits == 2
    uncached = adapter(srv, session, cache_ttl=0)
    await uncached.instances()
    await uncached.instances()
    assert len(api.state.requests) == calls * 3


async def test_prices(fake: tuple[DigitalOceanFake, FakeServer], session) -> None:
    _, srv = fake
    prices = await adapter(srv, session).prices()
    h100 = [p for p in prices if p.instance_type == "gpu-h100x8-640gb"]
    assert [(p.region, p.hourly_price, p.monthly_price, p.gpu_count) for p in h100] == [
        ("nyc1", Decimal("23.92"), Decimal("17796.48"), 8),
        ("tor1", Decimal("23.92"), Decimal("17796.48"), 8),
    ]


def test_validate_api_config() -> None:
    assert (
        DigitalOceanAdapter.validate_api_config({"token": Secret(TOKEN), "gpu_droplets": True}, "a.api") == []
    )
    bad = {"gpu_droplets": "yes", "invoices": "2", "tag_name": "", "page": 1}
    assert [str(p) for p in DigitalOceanAdapter.validate_api_config(bad, "accounts[3].api")] == [
        "accounts[3].api.page: unknown key",
        "accounts[3].api.token: required (or 'api_key'); use ${ENV_VAR} or token_file",
        "accounts[3].api.gpu_droplets: expected true or false",
        "accounts[3].api.invoices: must be an integer >= 0 (latest invoices to itemize)",
        "accounts[3].api.tag_name: expected a non-empty string",
    ]


def test_registered() -> None:
    assert (
        Registry(build_plugin_manager(load_entrypoints=False)).adapters["digitalocean"] is DigitalOceanAdapter
    )
