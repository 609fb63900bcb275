"""API collection jobs: rows to the real store, degraded on failure and cleared on success, cost view."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from fakes.server import FakeServer
from fakes.vultr import VultrFake

from multicloud_collector.config.model import AccountConfig, Config, ProviderSpec
from multicloud_collector.observe import NullObserver
from multicloud_collector.pipeline import ApiRowWriter
from multicloud_collector.plugins.manager import Registry, build_plugin_manager
from multicloud_collector.providers.collector import ProviderCollector, adapter_name, job_interval
from multicloud_collector.providers.records import BillingLine, Instance, PriceSource, ProviderStatus
from multicloud_collector.secrets import Secret
from multicloud_collector.sink.base import EncodedBatch
from multicloud_collector.sink.batcher import Batcher
from multicloud_collector.sink.embedded import EmbeddedSink
from multicloud_collector.sink.encode import encode_instances

pytest.importorskip("chdb")
TOKEN = "collector-vultr-key-42"
ADAPTERS = Registry(build_plugin_manager(load_entrypoints=False)).adapters


class Rows:
    """A sink recording rows (attribute names differ from the protocol's methods)."""

    def __init__(self) -> None:
        self.inst: list[Instance] = []
        self.bill: list[BillingLine] = []
        self.stat: list[ProviderStatus] = []
        self.changed = asyncio.Event()

    async def instances(self, customer: str, rows: Sequence[Instance], observed_ms: int) -> None:
        self.inst.extend(rows)

    async def billing(self, customer: str, rows: Sequence[BillingLine], observed_ms: int) -> None:
        self.bill.extend(rows)

    async def status(self, rows: Sequence[ProviderStatus]) -> None:
        self.stat.extend(rows)
        self.changed.set()


def config(url: str, **api: object) -> Config:
    settings: dict[str, object] = {"api_key": Secret(TOKEN), "base_url": url + "/v2", **api}
    accounts = (
        AccountConfig(id="acme-vultr", customer="acme", provider="vultr", api=settings),
        AccountConfig(id="metrics-only", customer="acme", provider="vultr"),
        AccountConfig(id="no-adapter", customer="acme", provider="onprem", api={"x": 1}),
        AccountConfig(id="missing", customer="acme", provider="ghost", api={"token": "t"}),
    )
    providers = {
        "vultr": ProviderSpec(name="vultr", adapter="vultr"),
        "onprem": ProviderSpec(name="onprem"),
        "ghost": ProviderSpec(name="ghost", adapter="ghost"),
    }
    return Config(providers=providers, accounts=accounts)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[VultrFake, FakeServer]]:
    api = VultrFake(token=TOKEN)
    async with FakeServer(api) as srv:
        yield api, srv


async def test_accounts_and_adapters(fake: tuple[VultrFake, FakeServer], session) -> None:
    _, srv = fake
    cfg = config(srv.url, inventory_interval="2m")
    pc = ProviderCollector(cfg, ADAPTERS, session, Rows())
    assert pc.accounts == ["acme-vultr", "missing"]
    assert adapter_name(cfg, cfg.accounts[2]) is None
    assert (
        job_interval(cfg.accounts[0], "inventory") == 120.0
        and job_interval(cfg.accounts[0], "billing") == 3600.0
    )
    statuses = await pc.run_once()
    by = {(s.account, s.job): s for s in statuses}
    assert by[("acme-vultr", "inventory")].status == "ok" and by[("acme-vultr", "inventory")].instances == 6
    assert by[("acme-vultr", "billing")].billing_lines == 7
    ghost = by[("missing", "inventory")]
    assert ghost.status == "error" and ghost.error.startswith("no provider adapter 'ghost' is installed")
    assert pc.readiness_info()["degraded"] == [
        {
            "account": "missing",
            "provider": "ghost",
            "job": "inventory",
            "status": "error",
            "reason": ghost.error,
        }
    ]
    await pc.close()


async def test_failure_marks_degraded_and_success_clears(fake: tuple[VultrFake, FakeServer], session) -> None:
    api, srv = fake
    rows = Rows()
    cfg = Config(providers=config(srv.url).providers, accounts=config(srv.url, max_tries=1).accounts[:1])
    pc = ProviderCollector(cfg, ADAPTERS, session, rows)
    api.state.fail_next = (401, {"error": "Invalid API token", "status": 401})
    api.state.fail_times = 1
    failed = await pc.run_job("acme-vultr", "inventory")
    assert (
        failed.status == "degraded"
        and failed.error == "401 from /v2/plans: token rejected (Invalid API token)"
    )
    assert failed.last_success is None and failed.base_url == srv.url + "/v2"
    info = pc.readiness_info()
    assert info["status"] == "degraded" and info["degraded"][0]["reason"] == failed.error
    api.state.fail_next = (503, {"error": "maintenance", "status": 503})
    outage = await pc.run_job("acme-vultr", "billing")
    assert outage.status == "degraded" and outage.error.startswith("503 from /v2/account: server error")
    ok = await pc.run_job("acme-vultr", "inventory")
    ok_billing = await pc.run_job("acme-vultr", "billing")
    assert ok.status == ok_billing.status == "ok" and ok.last_success == ok.last_attempt
    assert pc.readiness_info() == {"status": "ok", "accounts": 1, "degraded": []}
    assert [s.status for s in rows.stat] == ["degraded", "degraded", "ok", "ok"]
    assert ok.capabilities == ("billing", "inventory", "prices") and ok.display_name == "Vultr"
    assert pc.job_state("acme-vultr", "inventory").runs == 2


async def test_adapter_bug_is_an_error_not_a_crash(fake: tuple[VultrFake, FakeServer], session) -> None:
    api, srv = fake
    cfg = Config(providers=config(srv.url).providers, accounts=config(srv.url).accounts[:1])
    pc = ProviderCollector(cfg, ADAPTERS, session, Rows())
    api.instances[0]["tags"] = 5  # an answer the adapter cannot use
    st = await pc.run_job("acme-vultr", "inventory")
    assert st.status == "error" and st.error.startswith("TypeError")


async def test_run_loop_collects_until_stopped(fake: tuple[VultrFake, FakeServer], session) -> None:
    _, srv = fake
    rows = Rows()
    cfg = Config(
        providers=config(srv.url).providers,
        accounts=config(srv.url, inventory_interval="1s", billing_interval="1s").accounts[:1],
    )
    pc = ProviderCollector(cfg, ADAPTERS, session, rows)
    stop = asyncio.Event()
    task = asyncio.create_task(pc.run(stop))
    deadline = time.monotonic() + 10
    while len(rows.stat) < 4 and time.monotonic() < deadline:  # two rounds of both jobs
        rows.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rows.changed.wait(), max(0.01, deadline - time.monotonic()))
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(rows.stat) >= 4 and {s.job for s in rows.stat} == {"inventory", "billing"}
    assert len(rows.inst) >= 12


# ---- storage: the real embedded store ---------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedSink]:
    sink = EmbeddedSink(tmp_path / "chdb", "mcc", migrate=True)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


async def rows_of(store: EmbeddedSink, sql: str) -> list[dict[str, object]]:
    raw = await store.query(sql, "JSONEachRow")
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


async def test_rows_land_in_the_provider_tables(fake: tuple[VultrFake, FakeServer], session, store) -> None:
    api, srv = fake
    batcher = Batcher(store, max_age=60, observer=NullObserver())
    batcher.start()
    cfg = Config(providers=config(srv.url).providers, accounts=config(srv.url).accounts[:1])
    pc = ProviderCollector(cfg, ADAPTERS, session, ApiRowWriter(batcher))
    await pc.run_once()
    api.account["pending_charges"] = 61.5  # a restatement of the same line
    pc.adapter("acme-vultr").client.clear_cache()  # type: ignore[union-attr]
    await pc.run_once(["acme-vultr"], jobs=["billing"])
    await batcher.close(grace=10)
    inst = await rows_of(store, "SELECT * FROM mcc.instances FINAL ORDER BY name")
    assert len(inst) == 6 and inst[0]["customer"] == "acme"
    gpu = next(r for r in inst if r["name"] == "vultr-node-1")
    assert (gpu["gpu_model"], gpu["gpu_count"], gpu["price_source"], gpu["host"]) == (
        "NVIDIA_A100",
        1,
        "catalog",
        "vultr-node-1",
    )
    assert Decimal(str(gpu["hourly_price"])) == (Decimal("1750.2") / 730).quantize(Decimal("0.000001"))
    pending = await rows_of(
        store,
        "SELECT toString(billed_cost) AS c, billing_currency, toString(billing_period_start) AS bp "
        "FROM mcc.billing FINAL WHERE charge_category = 'pending' AND line_id LIKE 'pending:____-__'",
    )
    assert [p["c"] for p in pending] == ["61.5"]  # restated, not duplicated
    month = datetime.now(UTC).strftime("%Y-%m-01 00:00:00.000")
    assert pending[0]["billing_currency"] == "USD" and pending[0]["bp"] == month
    total = await rows_of(
        store,
        "SELECT toString(sum(billed_cost)) AS t FROM mcc.billing FINAL "
        "WHERE charge_category = 'invoice_item'",
    )
    assert total == [{"t": "1203.1"}]
    meta = await rows_of(
        store, "SELECT job, last_status, instances FROM mcc.provider_metadata FINAL ORDER BY job"
    )
    assert meta == [
        {"job": "billing", "last_status": "ok", "instances": 0},
        {"job": "inventory", "last_status": "ok", "instances": 6},
    ]


async def test_gpu_cost_hourly_view(store: EmbeddedSink) -> None:
    hour = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    insts = [
        Instance(
            "vultr",
            "a1",
            "i-1",
            "gpu-a",
            gpu_count=2,
            gpu_model="A100",
            hourly_price=Decimal("8.00"),
            price_source=PriceSource.CATALOG,
            host="host-a",
        ),
        Instance("lambda", "l1", "i-9", "gpu-l", gpu_count=0, hourly_price=Decimal("3.00"), host="host-l"),
    ]
    old = encode_instances(
        [Instance("vultr", "a1", "i-1", "gpu-a", hourly_price=Decimal("99"), host="host-a")], "c", 1000
    )
    body = encode_instances(insts, "c", int(time.time() * 1000))
    await store.insert(EncodedBatch.build("instances", old, 1))
    await store.insert(EncodedBatch.build("instances", body, 2))

    def at(minutes: int) -> str:
        return (hour + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")

    values = [
        ("vultr", "a1", "host-a", 0, "G0", at(0), 50),  # G0: 0 and 30 min, step 30 min -> 1 h, util 75
        ("vultr", "a1", "host-a", 0, "G0", at(30), 100),
        ("vultr", "a1", "host-a", 1, "G1", at(0), 0),  # G1: 0 and 15 min -> 0.5 h, util 0
        ("vultr", "a1", "host-a", 1, "G1", at(15), 0),
        ("lambda", "l1", "host-l", 0, "L0", at(0), 20),  # one GPU seen, API says 0 GPUs: price / 1 GPU
        ("lambda", "l1", "host-l", 0, "L0", at(20), 20),
        ("onprem", "o1", "box", 0, "X0", at(0), 10),  # no instance: unpriced
        ("onprem", "o1", "box", 0, "X0", at(6), 10),
    ]
    sql = ", ".join(f"('{p}', '{a}', '{h}', {i}, '{u}', '{t}', {v})" for p, a, h, i, u, t, v in values)
    await store.execute(
        "INSERT INTO mcc.gpu_samples "
        "(provider, account, host, gpu_index, gpu_uuid, ts, gpu_util_percent) VALUES " + sql
    )
    got = await rows_of(
        store,
        "SELECT provider, currency, round(gpu_hours, 6) AS gh, round(mean_util_percent, 6) AS mu, "
        "round(cost, 6) AS c, round(idle_cost, 6) AS ic, round(unpriced_gpu_hours, 6) AS u "
        "FROM mcc.gpu_cost_hourly ORDER BY provider",
    )
    assert got == [
        {"provider": "lambda", "currency": "USD", "gh": 0.666667, "mu": 20, "c": 2, "ic": 1.6, "u": 0},
        {"provider": "onprem", "currency": "", "gh": 0.2, "mu": 10, "c": 0, "ic": 0, "u": 0.2},
        {"provider": "vultr", "currency": "USD", "gh": 1.5, "mu": 50, "c": 6, "ic": 3, "u": 0},
    ]


# ---- the daemon: API failure degrades the account, metrics go on, success clears it --------------


async def test_daemon_readyz_degraded_while_metrics_continue(tmp_path: Path) -> None:
    import aiohttp
    import yaml

    from multicloud_collector.config import load_config
    from multicloud_collector.daemon import Daemon
    from multicloud_collector.demo.config import demo_config
    from multicloud_collector.demo.fleet import FleetSimulator
    from multicloud_collector.demo.providers_sim import ProviderApiSimulator

    async with FleetSimulator(seed=5, hosts_per_provider=1, providers=("vultr",)) as fleet:
        apis = ProviderApiSimulator(fleet)
        await apis.start()
        try:
            cfg = demo_config(fleet, tmp_path, listen="127.0.0.1:0", interval="1s", apis=apis)
            path = tmp_path / "mcc.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            daemon = Daemon(load_config(path, {"MCC_DEMO_API_TOKEN": "revoked-token-123"}))
            ready = asyncio.Event()
            task = asyncio.create_task(daemon.run(install_signals=False, on_ready=lambda _d: ready.set()))
            await asyncio.wait_for(ready.wait(), 60)
            assert daemon.providers is not None and daemon.server is not None
            account = daemon.providers.accounts[0]

            async with asyncio.timeout(30):  # first API run comes within 5 s; scrapes every 1 s
                while not (daemon.providers.degraded() and len(daemon.metrics.last_reports) >= 3):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            url = f"http://127.0.0.1:{daemon.server.port}/readyz"
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                body = await r.json()
            assert r.status == 200 and body["status"] == "ready"  # metrics still flow
            assert body["api"]["status"] == "degraded"
            reason = body["api"]["degraded"][0]["reason"]
            expected = rf"401 from /vultr/{account.split('-')[0]}/v2/(plans|account): token rejected"
            assert re.fullmatch(expected + r" \(Invalid API token\)", reason)
            assert all(r.status.value == "ok" for r in daemon.metrics.last_reports.values())

            apis.token = "revoked-token-123"  # the provider accepts the key again: next run clears it
            for job in ("inventory", "billing"):
                assert (await daemon.providers.run_job(account, job)).status == "ok"
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                body = await r.json()
            assert body["api"] == {"status": "ok", "accounts": 1, "degraded": []}
            daemon.stop.set()
            assert await asyncio.wait_for(task, 60) == 0
        finally:
            await apis.stop()
