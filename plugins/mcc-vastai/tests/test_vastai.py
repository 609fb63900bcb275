"""The Vast.ai adapter against the fake shipped in ``mcc_vastai.testing`` (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from mcc_vastai.adapter import VastAiAdapter
from mcc_vastai.testing import API_KEY, VastFake, serve

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret


def account(url: str, **api: Any) -> AccountConfig:
    settings: dict[str, Any] = {"base_url": url, "api_key": Secret(API_KEY)}
    settings.update(api)
    return AccountConfig(id="vast-1", customer="acme", provider="vastai", api=settings)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def fake() -> AsyncIterator[tuple[VastFake, str]]:
    f = VastFake()
    async with serve(f) as url:
        yield f, url


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_instances_across_next_token_pages(
    fake: tuple[VastFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    insts = {i.instance_id: i for i in await VastAiAdapter(account(url), session).instances()}
    assert len(insts) == 30
    assert [q.get("limit") for p, q in f.requests] == ["25", "25"] and "next_token" in f.requests[1][1]
    h = insts["9000"]
    assert (h.name, h.gpu_model, h.gpu_count, h.instance_type, h.status) == (
        "h100-0",
        "H100 SXM",
        8,
        "8x H100 SXM",
        "running",
    )
    assert (h.hourly_price, h.price_source, h.currency) == (Decimal("19.254"), PriceSource.API, "USD")
    assert (h.vcpus, h.memory_mib, h.ip, h.region) == (16, 129024, "192.0.2.0", "Sweden, SE")
    assert h.created_at == datetime.fromtimestamp(1740823200.5, UTC)
    assert insts["9007"].status == "stopped"
    provisioning = insts["9029"]
    assert (provisioning.name, provisioning.status, provisioning.labels["status_raw"]) == (
        "C.9029",
        "pending",
        "provisioning",
    )


async def test_billing_balance_and_charges_exact(
    fake: tuple[VastFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    lines = await VastAiAdapter(account(url, billing_days=3660), session).billing()
    balance = [x for x in lines if x.kind == BillingKind.BALANCE]
    charges = [x for x in lines if x.kind == BillingKind.INVOICE_ITEM]
    assert [(b.amount, b.line_id) for b in balance] == [(Decimal("123.45"), "balance:4242")]
    assert sorted(c.amount for c in charges) == [Decimal("1.00"), Decimal("2.636"), Decimal("192.540")]
    recent = await VastAiAdapter(account(url, billing_days=1), session).billing()
    assert [x.kind for x in recent] == [BillingKind.BALANCE]  # all charges older than a day
    assert sum((c.amount for c in charges), Decimal(0)) == Decimal("196.176")
    first = next(c for c in charges if c.resource_id == "9000")
    assert first.note == "10.000 x 19.2540" and first.period_start == datetime.fromtimestamp(1741000000, UTC)


async def test_429_without_retry_after_backs_off(
    fake: tuple[VastFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    adapter = VastAiAdapter(account(url), session)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    f.rate_limit_next = 2
    assert len(await adapter.instances()) == 30
    assert len(sleeps.waits) == 2 and adapter.client.stats.rate_limited == 2


async def test_bad_key_is_clear_and_secret_free(
    fake: tuple[VastFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    adapter = VastAiAdapter(account(url, api_key=Secret("wrong-vast-key-999")), session)
    with pytest.raises(ApiError) as err:
        await adapter.instances()
    assert str(err.value) == "401 from /api/v1/instances/: token rejected (Invalid or missing API key)"
    checks = await adapter.check()
    assert [(c.name, c.ok, c.status) for c in checks] == [("user", False, 401), ("instances", False, 401)]


async def test_cache_and_check(fake: tuple[VastFake, str], session: aiohttp.ClientSession) -> None:
    f, url = fake
    adapter = VastAiAdapter(account(url), session)
    await adapter.instances()
    n = len(f.requests)
    await adapter.instances()
    assert len(f.requests) == n
    assert [c.ok for c in await adapter.check()] == [True, True]


def test_validate_api_config() -> None:
    got = [str(p) for p in VastAiAdapter.validate_api_config({"page_size": 100}, "accounts[9].api")]
    assert sorted(got) == [
        "accounts[9].api.api_key: required; use ${ENV_VAR} or api_key_file",
        "accounts[9].api.page_size: must be an integer 1-25",
    ]
