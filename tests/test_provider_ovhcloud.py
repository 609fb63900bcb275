"""OVHcloud adapter against a fake that verifies every signature (and rejects a skewed clock)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fakes import ovhcloud as fake_ovh
from fakes.ovhcloud import APP_KEY, APP_SECRET, CONSUMER_KEY, PROJECT_A, PROJECT_B, OvhFake
from fakes.server import FakeServer, Sleeps
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.plugins.manager import Registry, build_plugin_manager
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.ovhcloud.adapter import OvhCloudAdapter
from multicloud_collector.providers.ovhcloud.signing import flavor_gpus, ovh_signature
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret


def account(url: str, **api: Any) -> AccountConfig:
    settings: dict[str, Any] = {
        "base_url": f"{url}/1.0",
        "application_key": Secret(APP_KEY),
        "application_secret": Secret(APP_SECRET),
        "consumer_key": Secret(CONSUMER_KEY),
    }
    settings.update(api)
    return AccountConfig(id="ovh-eu", customer="acme", provider="ovhcloud", api=settings)




@pytest.fixture
async def fake() -> AsyncIterator[tuple[OvhFake, str]]:
    f = OvhFake(time_offset=7200)  # the API's clock is 2 h ahead of this host's
    async with FakeServer(f) as srv:
        yield f, srv.url


def test_signature_matches_a_vector_computed_by_hand() -> None:
    # "$1$" + sha1_hex(secret+"+"+consumer+"+"+METHOD+"+"+url+"+"+body+"+"+timestamp), typed out literally
    raw = (
        "EXEgWIz07P0HYwtQDs7cNIqCiQaWSuHF+MtSwSrPpNjqfVSmJhLbPyr2i45lSwPU1+GET+"
        "https://eu.api.ovh.com/1.0/auth/currentCredential++1457018875"
    )
    expected = "$1$" + hashlib.sha1(raw.encode()).hexdigest()
    got = ovh_signature(
        "EXEgWIz07P0HYwtQDs7cNIqCiQaWSuHF",
        "MtSwSrPpNjqfVSmJhLbPyr2i45lSwPU1",
        "get",
        "https://eu.api.ovh.com/1.0/auth/currentCredential",
        "",
        1457018875,
    )
    assert got == expected and len(got) == 43
    # a POST signs the exact body bytes
    body = '{"description":"mcc"}'
    raw_post = "s+c+POST+https://eu.api.ovh.com/1.0/me/api/application+" + body + "+1700000000"
    assert ovh_signature(
        "s", "c", "POST", "https://eu.api.ovh.com/1.0/me/api/application", body, "1700000000"
    ) == ("$1$" + hashlib.sha1(raw_post.encode()).hexdigest())
    # and the fake's independent implementation agrees, so the fake verifies what the adapter sends
    assert fake_ovh.ovh_signature(
        "s", "c", "POST", "https://eu.api.ovh.com/1.0/me/api/application", body, "1700000000"
    ) == (ovh_signature("s", "c", "POST", "https://eu.api.ovh.com/1.0/me/api/application", body, 1700000000))


async def test_inventory_signed_with_server_time(
    fake: tuple[OvhFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    adapter = OvhCloudAdapter(account(url, prices={"h100-380": "2.99"}), session)
    insts = {i.instance_id: i for i in await adapter.instances()}
    assert f.rejections == [] and f.auth_time_calls == 1
    assert sorted(insts) == ["i-a-001", "i-a-002", "i-a-003", "i-b-001"]
    h100 = insts["i-a-001"]
    assert (h100.name, h100.region, h100.instance_type, h100.status, h100.gpu_model, h100.gpu_count) == (
        "trainer-h100",
        "GRA11",
        "h100-380",
        "running",
        "H100",
        1,
    )
    assert (h100.vcpus, h100.memory_mib, h100.ip, h100.host) == (30, 380000, "51.68.10.1", "trainer-h100")
    assert (h100.hourly_price, h100.price_source, h100.currency) == (
        Decimal("2.99"),
        PriceSource.CONFIG,
        "EUR",
    )
    assert h100.created_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert h100.labels == {
        "project": PROJECT_A,
        "status_raw": "ACTIVE",
        "plan_code": "h100-380.consumption",
        "billing": "hourly",
        "flavor_id": "f-h100-380",
    }
    assert (insts["i-a-002"].gpu_model, insts["i-a-002"].gpu_count, insts["i-a-002"].labels["billing"]) == (
        "L40S",
        2,
        "monthly",
    )
    assert (insts["i-a-003"].status, insts["i-a-003"].gpu_count) == ("stopped", 0)
    assert (insts["i-b-001"].status, insts["i-b-001"].gpu_model, insts["i-b-001"].gpu_count) == (
        "pending",
        "Tesla V100",
        2,
    )
    signed = [r for r in f.state.requests if r.path != "/1.0/auth/time"]
    assert signed and all(r.headers["X-Ovh-Application"] == APP_KEY for r in signed)
    assert all(APP_SECRET not in str(r.headers) for r in signed)


async def test_clock_skew_without_auth_time_is_rejected(
    fake: tuple[OvhFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    adapter = OvhCloudAdapter(account(url), session)
    adapter._delta = 0  # pretend /auth/time said "no skew": the fake's clock is 2 h ahead
    with pytest.raises(ApiError) as err:
        await adapter.instances()
    assert str(err.value) == "400 from /1.0/cloud/project: bad request (Invalid signature)"
    assert f.rejections == ["timestamp"]


async def test_wrong_secret_and_wrong_consumer(
    fake: tuple[OvhFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    with pytest.raises(ApiError) as err:
        await OvhCloudAdapter(
            account(url, application_secret=Secret("not-the-secret-1")), session
        ).instances()
    assert (
        err.value.status == 400
        and "Invalid signature" in str(err.value)
        and "not-the-secret-1" not in str(err.value)
    )
    with pytest.raises(ApiError) as err2:
        await OvhCloudAdapter(account(url, consumer_key=Secret("revoked-consumer-2")), session).instances()
    assert str(err2.value) == "403 from /1.0/cloud/project: permission denied (This credential is not valid)"
    assert f.rejections == ["signature", "consumer"]
    checks = await OvhCloudAdapter(account(url, application_key=Secret("bad-app-key-3")), session).check()
    assert [(c.name, c.ok, c.status) for c in checks] == [
        ("auth_time", True, 200),
        ("me", False, 403),
        ("cloud_projects", False, 403),
    ]
    assert "This application key is invalid" in checks[1].detail


async def test_billing_invoice_items_and_usage_exact(
    fake: tuple[OvhFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    adapter = OvhCloudAdapter(account(url), session)
    lines = {line.line_id: line for line in await adapter.billing()}
    assert f.rejections == []
    bill_query = next(r.query for r in f.state.requests if r.path == "/1.0/me/bill")
    assert set(bill_query) == {"date.from"}
    item = lines["bill:FR12345678:FR12345678-1"]
    assert (item.kind, item.amount, item.currency, item.resource_id) == (
        BillingKind.INVOICE_ITEM,
        Decimal("1400.05"),
        "EUR",
        PROJECT_A,
    )
    assert (item.period_start, item.period_end) == (
        datetime(2025, 2, 1, tzinfo=UTC),
        datetime(2025, 3, 1, tzinfo=UTC),
    )
    invoiced = sum((v.amount for v in lines.values() if v.kind == BillingKind.INVOICE_ITEM), Decimal(0))
    assert invoiced == Decimal("1455.15")  # == the bill's priceWithoutTax, no float drift
    usage = [v for v in lines.values() if v.kind == BillingKind.USAGE]
    assert sorted((u.resource_id, u.amount) for u in usage) == [
        ("i-a-001", Decimal("672.1")),
        ("i-a-002", Decimal("1300.0")),
        ("i-a-003", Decimal("0.2")),
    ]
    assert sum((u.amount for u in usage), Decimal(0)) == Decimal("1972.3")
    h = next(u for u in usage if u.resource_id == "i-a-001")
    assert h.currency == "EUR" and h.description == "h100-380 GRA11 hourly 224 Hour"
    assert h.period_start == datetime(2025, 3, 1, tzinfo=UTC) and h.period_end == datetime(
        2025, 3, 10, 12, tzinfo=UTC
    )


async def test_bill_without_details_uses_its_total(
    fake: tuple[OvhFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    f.bill_details["FR12345678"] = {}
    adapter = OvhCloudAdapter(account(url, projects=[PROJECT_B]), session)
    lines = await adapter.billing()
    assert [(x.line_id, x.amount) for x in lines] == [("bill:FR12345678", Decimal("1455.15"))]


async def test_cache_hit_within_ttl_and_429_backoff(
    fake: tuple[OvhFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    adapter = OvhCloudAdapter(account(url), session)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    f.state.rate_limit_next = 1  # the /auth/time call
    first = await adapter.instances()
    assert len(sleeps.waits) == 1 and adapter.client.stats.rate_limited == 1
    n = len(f.state.requests)
    assert await adapter.instances() == first
    assert len(f.state.requests) == n and adapter.client.stats.cache_hits == 5


async def test_check_all_ok(fake: tuple[OvhFake, str], session: aiohttp.ClientSession) -> None:
    _, url = fake
    checks = await OvhCloudAdapter(account(url), session).check()
    assert [(c.name, c.ok) for c in checks] == [("auth_time", True), ("me", True), ("cloud_projects", True)]


async def test_bad_auth_time_answer(fake: tuple[OvhFake, str], session: aiohttp.ClientSession) -> None:
    f, url = fake
    f.state.fail_next = (200, "not-a-number")
    with pytest.raises(ApiError) as err:
        await OvhCloudAdapter(account(url), session).instances()
    assert str(err.value) == "200 from /auth/time: not a unix timestamp"


def test_validate_api_config_messages() -> None:
    api = {
        "application_key": "k",
        "billing_days": 0,
        "projects": "abc",
        "gpu_flavors": {"h200-760": {"model": "H200"}, "ok-1": {"model": "X", "count": 1}},
        "prices": {"h100-380": "free"},
    }
    got = {str(p) for p in OvhCloudAdapter.validate_api_config(api, "accounts[5].api")}
    assert got == {
        "accounts[5].api.application_secret: required; use ${ENV_VAR} or application_secret_file",
        "accounts[5].api.consumer_key: required; use ${ENV_VAR} or consumer_key_file",
        "accounts[5].api.billing_days: must be an integer 1-3660",
        "accounts[5].api.projects: expected a list of project IDs, got string",
        "accounts[5].api.gpu_flavors.h200-760: expected {model: <GPU name>, count: <integer>}",
        "accounts[5].api.prices.h100-380: expected an hourly price (number), got 'free'",
    }
    assert str(OvhCloudAdapter.validate_api_config({}, "a")[0]) == (
        "a.application_key: required; use ${ENV_VAR} or application_key_file"
    )
    bad = OvhCloudAdapter.validate_api_config(
        {"application_key": "k", "application_secret": "s", "consumer_key": "c", "gpu_flavors": [1]}, "a"
    )
    assert [str(p) for p in bad] == [
        "a.gpu_flavors: expected a mapping of flavor name to {model, count}, got list"
    ]


def test_flavor_gpu_table_and_overrides() -> None:
    assert flavor_gpus("h100-380") == ("H100", 1)
    assert flavor_gpus("h100-1520") == ("H100", 4)
    assert flavor_gpus("win-t1-45") == ("Tesla V100", 1)
    assert flavor_gpus("b3-8") == ("", 0) and flavor_gpus("weird") == ("", 0)
    assert flavor_gpus("h200-760", {"h200-760": ("H200", 1)}) == ("H200", 1)


async def test_gpu_flavor_override_from_config(
    fake: tuple[OvhFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    adapter = OvhCloudAdapter(
        account(url, gpu_flavors={"b3-8": {"model": "none", "count": 0}}, projects=[PROJECT_A]), session
    )
    assert adapter.gpu_overrides == {"b3-8": ("none", 0)}
    insts = {i.instance_id: i for i in await adapter.instances()}
    assert insts["i-a-003"].gpu_model == "none" and len(insts) == 3


@given(
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    st.text(max_size=40),
    st.integers(min_value=0, max_value=2**31),
)
def test_signature_property(secret: str, consumer: str, method: str, body: str, ts: int) -> None:
    url = "https://eu.api.ovh.com/1.0/me"
    sig = ovh_signature(secret, consumer, method.lower(), url, body, ts)
    raw = f"{secret}+{consumer}+{method}+{url}+{body}+{ts}".encode()
    assert sig == "$1$" + hashlib.sha1(raw).hexdigest()


def test_registered_through_its_plugin_module() -> None:
    pm = build_plugin_manager(False, default_plugins=("multicloud_collector.providers.ovhcloud.plugin",))
    assert Registry(pm).adapters == {"ovhcloud": OvhCloudAdapter}
