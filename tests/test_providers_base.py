"""The adapter base class: config checks, settings, auth, connection test, estimate lines, records."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiohttp import web
from fakes.server import FakeApi, FakeServer

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.providers.base import ESTIMATE_NOTE, ProviderAdapter, estimate_lines
from multicloud_collector.providers.records import (
    BillingKind,
    Instance,
    PriceSource,
    normalize_status,
)
from multicloud_collector.secrets import Secret

TOKEN = "base-adapter-token-1234"


class Tiny(ProviderAdapter):
    name = "tiny"
    display_name = "Tiny Cloud"
    default_base_url = "https://api.tiny.example/v1"
    api_keys = frozenset({"token", "project"})
    check_paths = (("account", "/account"), ("instances", "/instances"))

    async def instances(self) -> list[Instance]:
        data = await self.client.get_json("/instances")
        return [self.instance(str(i["id"]), i["name"], host=i["name"]) for i in data["instances"]]


class TinyApi(FakeApi):
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/account", lambda r: web.json_response({"ok": True}))
        router.add_get(
            "/v1/instances", lambda r: web.json_response({"instances": [{"id": 1, "name": "gpu-a"}]})
        )


def account(**api: object) -> AccountConfig:
    return AccountConfig(id="acct-1", customer="acme", provider="tiny", api=api)


@pytest.fixture
async def tiny() -> AsyncIterator[tuple[TinyApi, FakeServer]]:
    fake = TinyApi(token=TOKEN)
    async with FakeServer(fake) as srv:
        yield fake, srv


def test_validate_api_config_reports_every_problem_with_paths() -> None:
    problems = Tiny.validate_api_config(
        {
            "tokn": "x",
            "base_url": "ftp://x",
            "timeout": "fast",
            "cache_ttl": "0s",
            "max_tries": 0,
            "billing_interval": 0,
        },
        "accounts[2].api",
    )
    assert [str(p) for p in problems] == [
        "accounts[2].api.tokn: unknown key (did you mean 'token'?)",
        "accounts[2].api.base_url: scheme must be http or https",
        "accounts[2].api.timeout: invalid duration 'fast': use a number of seconds or units d, h, m, s, ms "
        "(e.g. 15s, 500ms, 1h30m)",
        "accounts[2].api.billing_interval: must be greater than 0",
        "accounts[2].api.max_tries: must be an integer >= 1",
        "accounts[2].api.token: required; use ${ENV_VAR} or token_file",
    ]


def test_validate_api_config_accepts_good_config() -> None:
    api = {"token": Secret(TOKEN), "base_url": "http://127.0.0.1:8080/v1", "cache_ttl": "10m", "project": "p"}
    assert Tiny.validate_api_config(api, "accounts[0].api") == []
    assert [str(p) for p in Tiny.validate_api_config({"base_url": 5, "token": "t"}, "a.api")] == [
        "a.api.base_url: expected a string, got integer"
    ]


def test_settings_and_defaults(session) -> None:
    adapter = Tiny(
        account(token=Secret(TOKEN), cache_ttl="2m", timeout=5, max_tries=2, project="p1"), session
    )
    assert adapter.base_url == "https://api.tiny.example/v1"
    assert adapter.cache_ttl == 120.0 and adapter.timeout == 5.0 and adapter.client.max_tries == 2
    assert adapter.setting("project") == "p1" and adapter.setting("missing", "d") == "d"
    header = adapter.auth_headers()["Authorization"]
    assert isinstance(header, Secret) and header.reveal() == f"Bearer {TOKEN}" and TOKEN not in repr(header)
    odd = Tiny(account(token="plain", timeout="bad", max_tries=True), session, base_url="http://x/")
    assert odd.base_url == "http://x" and odd.timeout == 30.0 and odd.client.max_tries == 4
    assert Tiny(account(), session).auth_headers() == {}


async def test_base_url_override_and_instances(tiny: tuple[TinyApi, FakeServer], session) -> None:
    _, srv = tiny
    adapter = Tiny(account(token=Secret(TOKEN), base_url=srv.url + "/v1"), session)
    found = await adapter.instances()
    assert found == [Instance("tiny", "acct-1", "1", "gpu-a", host="gpu-a")]
    assert await adapter.billing() == [] and await adapter.prices() == []
    await adapter.close()


async def test_check_reports_each_endpoint(tiny: tuple[TinyApi, FakeServer], session) -> None:
    _, srv = tiny
    good = Tiny(account(token=Secret(TOKEN), base_url=srv.url + "/v1"), session)
    results = await good.check()
    assert [(r.name, r.ok, r.status, r.detail) for r in results] == [
        ("account", True, 200, "ok"),
        ("instances", True, 200, "ok"),
    ]
    assert all(r.latency_ms is not None and r.latency_ms >= 0 for r in results)
    bad = Tiny(account(token=Secret("wrong-token-xyz"), base_url=srv.url + "/v1"), session)
    failed = await bad.check()
    assert (failed[0].ok, failed[0].status, failed[0].detail) == (
        False,
        401,
        "401 from /v1/account: token rejected (Invalid API token)",
    )


def test_estimate_lines_exact_decimal() -> None:
    since = datetime(2024, 5, 1, tzinfo=UTC)
    now = since + timedelta(hours=10)
    running = Instance(
        "lambda",
        "a",
        "i-1",
        "gpu-1",
        instance_type="gpu_1x_a100",
        status="running",
        hourly_price=Decimal("1.29"),
        price_source=PriceSource.CATALOG,
        created_at=since + timedelta(hours=4),
    )
    stopped = dataclasses.replace(running, instance_id="i-2", status="stopped")
    unpriced = dataclasses.replace(running, instance_id="i-3", hourly_price=None)
    lines = estimate_lines([running, stopped, unpriced], provider="lambda", account="a", now=now, since=since)
    assert [(ln.line_id, ln.amount) for ln in lines] == [
        ("estimate:i-1:2024-05-01T00:00:00+00:00", Decimal("7.740000")),  # 6 h x 1.29
        ("estimate:i-2:2024-05-01T00:00:00+00:00", Decimal("0.000000")),
    ]
    first = lines[0]
    assert first.kind is BillingKind.ESTIMATE and first.note == ESTIMATE_NOTE
    assert (first.period_start, first.period_end, first.currency, first.resource_id) == (
        since,
        now,
        "USD",
        "i-1",
    )
    observed = estimate_lines(
        [running, stopped],
        provider="lambda",
        account="a",
        now=now,
        since=since,
        uptime={"i-1": 5400.0, "i-2": 1e9},
    )
    assert [ln.amount for ln in observed] == [
        Decimal("1.935000"),
        Decimal("12.900000"),
    ]  # 1.5 h; capped at 10 h
    no_created = dataclasses.replace(running, created_at=None)
    assert estimate_lines([no_created], provider="lambda", account="a", now=now, since=since)[
        0
    ].amount == Decimal("12.900000")


def test_normalize_status_and_records_frozen() -> None:
    mapping = {"active": "running", "off": "stopped", "weird": "sideways"}
    assert normalize_status(" Active ", mapping) == "running"
    assert normalize_status("off", mapping) == "stopped"
    assert normalize_status("weird", mapping) == "unknown"
    assert normalize_status("new-thing", mapping) == "unknown"
    inst = Instance("p", "a", "i", "n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        inst.name = "x"  # type: ignore[misc]
    assert BillingKind("invoice_item") is BillingKind.INVOICE_ITEM and str(PriceSource.NONE) == ""
