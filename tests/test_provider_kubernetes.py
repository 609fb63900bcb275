"""Kubernetes adapter against a fake API server on 127.0.0.1 (and one over real TLS with a CA file)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fakes.kubernetes import TOKEN, KubernetesFake, make_node
from fakes.server import FakeServer, Sleeps
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.plugins.manager import Registry, build_plugin_manager
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.kubernetes.adapter import KubernetesAdapter, in_cluster_url, month_start
from multicloud_collector.providers.kubernetes.nodes import node_status, node_to_instance, parse_quantity
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret


def account(url: str, **api: Any) -> AccountConfig:
    settings: dict[str, Any] = {"base_url": url, "token": Secret(TOKEN)}
    settings.update(api)
    return AccountConfig(id="k8s-prod", customer="acme", provider="kubernetes", api=settings)




@pytest.fixture
async def fake() -> AsyncIterator[tuple[KubernetesFake, str]]:
    f = KubernetesFake()
    async with FakeServer(f) as srv:
        yield f, srv.url


async def test_inventory_across_continue_pages(
    fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    adapter = KubernetesAdapter(account(url, page_size=2), session)
    insts = {i.instance_id: i for i in await adapter.instances()}
    assert sorted(insts) == ["cpu-a", "cpu-b", "gpu-h100-a", "gpu-h100-b", "gpu-l4-old"]
    node_calls = [r for r in f.state.requests if r.path == "/api/v1/nodes"]
    assert len(node_calls) == 3
    assert [r.query.get("limit") for r in node_calls] == ["2", "2", "2"]
    assert "continue" not in node_calls[0].query and all("continue" in r.query for r in node_calls[1:])
    h100 = insts["gpu-h100-a"]
    assert (h100.gpu_count, h100.gpu_model, h100.instance_type) == (8, "NVIDIA-H100-80GB-HBM3", "p5.48xlarge")
    assert (h100.region, h100.zone, h100.status, h100.host, h100.ip) == (
        "us-east-1",
        "us-east-1a",
        "running",
        "gpu-h100-a",
        "10.0.1.11",
    )
    assert (h100.vcpus, h100.memory_mib) == (192, 2048000)
    assert h100.created_at == datetime(2025, 1, 10, 8, 0, tzinfo=UTC)
    assert h100.labels["provider_id"] == "aws:///us-east-1a/i-0abc0000000000001"
    assert h100.price_source == PriceSource.NONE and h100.hourly_price is None
    old = insts["gpu-l4-old"]  # only the deprecated beta labels
    assert (old.instance_type, old.region, old.zone, old.gpu_count, old.vcpus, old.memory_mib) == (
        "g6.xlarge",
        "us-west-2",
        "us-west-2c",
        1,
        3,
        15360,
    )
    down = insts["cpu-b"]
    assert (down.status, down.labels["status_raw"], down.labels["unschedulable"], down.gpu_count) == (
        "unknown",
        "Unknown",
        "true",
        0,
    )
    await adapter.close()


async def test_expired_continue_token_restarts_list_once(
    fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    f.nodes.expire_continue_next = 1
    adapter = KubernetesAdapter(account(url, page_size=2), session)
    assert len(await adapter.instances()) == 5
    queries = [r.query for r in f.state.requests if r.path == "/api/v1/nodes"]
    # page 1, page 2 -> 410, then the whole list again: page 1, 2, 3
    assert len(queries) == 5 and "continue" not in queries[2]
    f.nodes.expire_continue_next = 2
    adapter.client.clear_cache()
    with pytest.raises(ApiError) as err:
        await adapter.instances()
    assert err.value.status == 410 and "/api/v1/nodes" in str(err.value)


async def test_429_waits_retry_after(
    fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    f.state.rate_limit_next, f.state.retry_after = 1, 3.0
    adapter = KubernetesAdapter(account(url), session)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    assert len(await adapter.instances()) == 5
    assert sleeps.waits == [3.0]
    assert adapter.client.stats.rate_limited == 1


async def test_bad_token_is_a_clear_error_without_the_secret(
    fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    adapter = KubernetesAdapter(account(url, token=Secret("wrong-token-value-123")), session)
    with pytest.raises(ApiError) as err:
        await adapter.instances()
    text = str(err.value)
    assert text.startswith("401 from /api/v1/nodes: token rejected") and "wrong-token-value-123" not in text
    checks = await adapter.check()
    assert [(c.name, c.ok, c.status) for c in checks] == [("version", False, 401), ("nodes", False, 401)]


async def test_rbac_forbidden_names_the_reason(
    fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession
) -> None:
    f, url = fake
    f.nodes.forbid = True
    with pytest.raises(ApiError) as err:
        await KubernetesAdapter(account(url), session).instances()
    assert err.value.status == 403 and "cannot list resource" in str(err.value)


async def test_cache_hit_within_ttl(fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession) -> None:
    f, url = fake
    adapter = KubernetesAdapter(account(url, page_size=2), session)
    first = await adapter.instances()
    calls = f.state.count("/api/v1/nodes")
    assert await adapter.instances() == first
    assert f.state.count("/api/v1/nodes") == calls and adapter.client.stats.cache_hits == 3


async def test_check_reports_each_endpoint(
    fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    checks = await KubernetesAdapter(account(url), session).check()
    assert [(c.name, c.ok, c.status) for c in checks] == [("version", True, 200), ("nodes", True, 200)]


async def test_service_account_token_is_read_and_reread(
    fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    f, url = fake
    (tmp_path / "token").write_text(TOKEN + "\n")
    acct = AccountConfig(
        id="in-cluster",
        customer="acme",
        provider="kubernetes",
        api={"base_url": url, "service_account_dir": str(tmp_path)},
    )
    adapter = KubernetesAdapter(acct, session)
    assert len(await adapter.instances()) == 5
    f.state.token = "rotated-token-456789"
    (tmp_path / "token").write_text("rotated-token-456789")
    adapter.client.clear_cache()
    assert len(await adapter.instances()) == 5
    assert f.state.requests[-1].headers["Authorization"] == "Bearer rotated-token-456789"


def test_in_cluster_url_from_environment(session: aiohttp.ClientSession) -> None:
    assert in_cluster_url({}) is None
    assert in_cluster_url(
        {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT_HTTPS": "6443"}
    ) == ("https://10.96.0.1:6443")
    assert in_cluster_url({"KUBERNETES_SERVICE_HOST": "fd00::1"}) == "https://[fd00::1]:443"
    acct = AccountConfig(id="a", customer="c", provider="kubernetes", api={})
    adapter = KubernetesAdapter(
        acct, session, env={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    )
    assert adapter.base_url == "https://10.96.0.1:443"
    assert KubernetesAdapter(acct, session, env={}).base_url == "https://kubernetes.default.svc"


async def test_config_prices_give_exact_estimates(
    fake: tuple[KubernetesFake, str], session: aiohttp.ClientSession
) -> None:
    _, url = fake
    adapter = KubernetesAdapter(
        account(url, prices={"p5.48xlarge": "98.32", "g6.xlarge": 0.805}, currency="EUR"), session
    )
    insts = {i.instance_id: i for i in await adapter.instances()}
    assert insts["gpu-l4-old"].hourly_price == Decimal("0.805")
    assert insts["gpu-h100-a"].price_source == PriceSource.CONFIG and insts["gpu-h100-a"].currency == "EUR"
    lines = await adapter.billing()
    assert sorted(line.resource_id for line in lines) == ["gpu-h100-a", "gpu-h100-b", "gpu-l4-old"]
    for line in lines:
        assert line.kind == BillingKind.ESTIMATE and line.currency == "EUR" and "estimate" in line.note
        assert line.period_start == month_start(line.period_end)
        hours = Decimal(str((line.period_end - line.period_start).total_seconds())) / Decimal(3600)
        price = insts[line.resource_id].hourly_price
        assert price is not None
        assert line.amount == (price * hours).quantize(Decimal("0.000001"))
    entries = await adapter.prices()
    assert [(e.instance_type, e.hourly_price, e.currency) for e in entries] == [
        ("g6.xlarge", Decimal("0.805"), "EUR"),
        ("p5.48xlarge", Decimal("98.32"), "EUR"),
    ]
    assert await KubernetesAdapter(account(url), session).billing() == []


def test_validate_api_config_messages() -> None:
    api = {
        "token": Secret("t0ken-abc"),
        "page_size": 0,
        "prices": {"p5.48xlarge": "lots", "g6.xlarge": -1},
        "currency": "dollars",
        "ca_file": 5,
        "insecure_skip_tls_verify": "yes",
        "label_selektor": "gpu=true",
    }
    got = {str(p) for p in KubernetesAdapter.validate_api_config(api, "accounts[3].api")}
    assert got == {
        "accounts[3].api.page_size: must be an integer 1-5000",
        "accounts[3].api.prices.p5.48xlarge: expected an hourly price (number), got 'lots'",
        "accounts[3].api.prices.g6.xlarge: must not be negative",
        "accounts[3].api.currency: expected a 3-letter ISO 4217 code such as USD, got 'dollars'",
        "accounts[3].api.ca_file: expected a string, got integer",
        "accounts[3].api.insecure_skip_tls_verify: expected true or false, got string",
        "accounts[3].api.label_selektor: unknown key (did you mean 'label_selector'?)",
    }
    assert KubernetesAdapter.validate_api_config({"prices": ["x"]}, "a.api")[0].message.startswith(
        "expected a mapping"
    )
    assert KubernetesAdapter.validate_api_config({}, "a.api") == []  # in-cluster: no token needed


def test_registered_through_its_plugin_module() -> None:
    pm = build_plugin_manager(False, default_plugins=("multicloud_collector.providers.kubernetes.plugin",))
    assert Registry(pm).adapters == {"kubernetes": KubernetesAdapter}


# ---- TLS with the cluster CA -----------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "ca.crt", tmp / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ),
            *("-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_with_service_account_ca(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    cert, key = _self_signed(tmp_path)
    (tmp_path / "token").write_text(TOKEN)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(KubernetesFake([make_node("n1", uid="u1", gpus=2)]).app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        url = f"https://127.0.0.1:{port}"
        acct = AccountConfig(
            id="tls",
            customer="c",
            provider="kubernetes",
            api={"base_url": url, "service_account_dir": str(tmp_path)},
        )
        adapter = KubernetesAdapter(acct, session)
        assert [(i.name, i.gpu_count) for i in await adapter.instances()] == [("n1", 2)]
        await adapter.close()
        # the shared session does not trust the cluster CA: the same call fails without it
        plain = KubernetesAdapter(account(url, max_tries=1), session)
        with pytest.raises(ApiError) as err:
            await plain.instances()
        assert err.value.status is None
        insecure = KubernetesAdapter(account(url, insecure_skip_tls_verify=True), session)
        assert len(await insecure.instances()) == 1
        await insecure.close()
    finally:
        await runner.cleanup()


# ---- pure helpers ------------------------------------------------------------------------------------

_MULT = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 1000, "M": 10**6, "G": 10**9, "": 1}


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(_MULT)))
def test_parse_quantity_binary_and_decimal_suffixes(n: int, suffix: str) -> None:
    assert parse_quantity(f"{n}{suffix}") == Decimal(n) * _MULT[suffix]


@given(st.integers(min_value=0, max_value=10**6))
def test_parse_quantity_milli_and_exponent(n: int) -> None:
    assert parse_quantity(f"{n}m") == Decimal(n) / 1000
    assert parse_quantity(f"{n}e3") == Decimal(n) * 1000


@given(st.text(alphabet="abcxyz!@ ", min_size=1, max_size=6))
def test_parse_quantity_rejects_garbage(text: str) -> None:
    assert parse_quantity(text) is None


def test_parse_quantity_other_types() -> None:
    assert parse_quantity(8) == Decimal(8)
    assert parse_quantity(None) is None and parse_quantity(True) is None and parse_quantity(1.5) is None


def test_node_status_words() -> None:
    node = make_node("x", uid="u")
    assert node_status(node) == ("running", "Ready")
    node["metadata"]["deletionTimestamp"] = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    assert node_status(node) == ("terminated", "Terminating")
    assert node_status(make_node("y", uid="v", ready="False")) == ("unknown", "NotReady")
    assert node_status({"metadata": {}, "status": {}}) == ("unknown", "NoReadyCondition")


def test_node_to_instance_keeps_chosen_label_prefixes() -> None:
    node = make_node("n", uid="u", extra_labels={"node.coreweave.cloud/state": "zap", "other/x": "1"})
    inst = node_to_instance(
        node,
        provider="p",
        account="a",
        default_zone="Z1",
        extra_labels={"cluster": "c1"},
        keep_label_prefixes=("node.coreweave",),
    )
    assert inst.labels["node.coreweave.cloud/state"] == "zap" and "other/x" not in inst.labels
    assert (inst.zone, inst.labels["cluster"]) == ("Z1", "c1")
