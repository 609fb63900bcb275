"""Docker adapter against a fake Engine API on a real unix socket (and once over TCP via base_url)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fakes.docker import DockerFake
from fakes.server import FakeServer, FakeUnixServer, Sleeps
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.plugins.manager import Registry, build_plugin_manager
from multicloud_collector.providers.docker.adapter import DockerAdapter, gpu_requests
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.kubernetes.adapter import month_start
from multicloud_collector.providers.records import BillingKind, PriceSource

TRAINER = "4f3c2b1a" + "0" * 56
DCGM = "9e8d7c6b" + "1" * 56
NOTEBOOK = "1a2b3c4d" + "2" * 56
INFER = "5e6f7a8b" + "3" * 56


def account(**api: Any) -> AccountConfig:
    return AccountConfig(id="gpu-host-07", customer="acme", provider="docker", api=api)




@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # unix socket paths are limited to ~108 bytes: pytest's tmp_path can be longer
    d = Path(tempfile.mkdtemp(prefix="mcc-dk-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def fake(sock_dir: Path) -> AsyncIterator[tuple[DockerFake, str]]:
    f = DockerFake()
    path = sock_dir / "docker.sock"
    async with FakeUnixServer(f, path):
        yield f, str(path)


async def test_containers_with_gpu_requests_over_the_socket(
    fake: tuple[DockerFake, str], session: aiohttp.ClientSession
) -> None:
    f, sock = fake
    adapter = DockerAdapter(account(socket=sock, host_gpu_count=8), session)
    insts = {i.instance_id: i for i in await adapter.instances()}
    assert set(insts) == {TRAINER, DCGM, NOTEBOOK, INFER}
    assert f.state.requests[0].path == "/v1.43/info"
    assert {r.query.get("all") for r in f.state.requests if r.path == "/v1.43/containers/json"} == {"1"}
    t = insts[TRAINER]
    assert (t.name, t.instance_type, t.status, t.gpu_count, t.host, t.ip) == (
        "trainer",
        "nvcr.io/nvidia/pytorch:24.05-py3",
        "running",
        2,
        "gpu-host-07",
        "172.17.0.2",
    )
    assert (t.vcpus, t.memory_mib) == (16, 65536)
    assert t.labels["gpu_device_ids"] == "0,1" and t.labels["gpu_driver"] == "nvidia"
    assert t.labels["compose_project"] == "ml" and t.labels["status_text"] == "Up 4 days"
    assert t.created_at == datetime.fromtimestamp(1740823200, UTC)
    d = insts[DCGM]
    assert (d.gpu_count, d.labels["gpu_request"]) == (8, "all")  # --gpus all on an 8-GPU host
    n = insts[NOTEBOOK]
    assert (n.status, n.labels["status_raw"], n.gpu_count, n.vcpus, n.memory_mib) == (
        "stopped",
        "exited",
        0,
        None,
        None,
    )
    i = insts[INFER]
    assert (i.status, i.gpu_count, i.labels["gpu_driver"]) == ("pending", 1, "default")
    await adapter.close()
    assert adapter._own_session is None


async def test_container_removed_between_list_and_inspect(
    fake: tuple[DockerFake, str], session: aiohttp.ClientSession
) -> None:
    f, sock = fake
    f.inspect_missing.add(TRAINER)
    adapter = DockerAdapter(account(socket=sock), session)
    insts = {i.instance_id: i for i in await adapter.instances()}
    assert insts[TRAINER].gpu_count == 0 and insts[TRAINER].name == "trainer"
    assert insts[DCGM].gpu_count == 0 and insts[DCGM].labels["gpu_request"] == "all"  # host_gpu_count unset
    await adapter.close()


async def test_unsupported_api_version_is_a_clear_error(
    fake: tuple[DockerFake, str], session: aiohttp.ClientSession
) -> None:
    _, sock = fake
    adapter = DockerAdapter(account(socket=sock, api_version="1.99"), session)
    with pytest.raises(ApiError) as err:
        await adapter.instances()
    expected = "client version 1.99 is too new. Maximum supported API version is 1.47"
    assert str(err.value) == f"400 from /v1.99/info: bad request ({expected})"
    await adapter.close()


async def test_missing_socket_names_the_path(sock_dir: Path, session: aiohttp.ClientSession) -> None:
    adapter = DockerAdapter(account(socket=str(sock_dir / "absent.sock"), max_tries=2), session)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    with pytest.raises(ApiError) as err:
        await adapter.instances()
    assert err.value.status is None and str(sock_dir / "absent.sock") in str(err.value)
    assert len(sleeps.waits) == 1  # retried once with backoff
    await adapter.close()


async def test_server_errors_are_retried(
    fake: tuple[DockerFake, str], session: aiohttp.ClientSession
) -> None:
    f, sock = fake
    f.state.fail_next, f.state.fail_times = (500, {"message": "Internal Server Error"}), 1
    adapter = DockerAdapter(account(socket=sock), session)
    sleeps = Sleeps()
    adapter.client.sleep = sleeps
    assert len(await adapter.instances()) == 4 and len(sleeps.waits) == 1
    await adapter.close()


async def test_inspect_failure_other_than_404_propagates(
    fake: tuple[DockerFake, str], session: aiohttp.ClientSession
) -> None:
    f, sock = fake
    adapter = DockerAdapter(account(socket=sock, max_tries=1), session)
    await adapter._client_ready()
    f.state.fail_next, f.state.fail_times = (409, {"message": "conflict"}), 1
    with pytest.raises(ApiError) as err:
        await adapter.instances()
    assert err.value.status == 409 and err.value.path == "/v1.43/info"
    await adapter.close()


async def test_cache_hit_within_ttl(fake: tuple[DockerFake, str], session: aiohttp.ClientSession) -> None:
    f, sock = fake
    adapter = DockerAdapter(account(socket=sock), session)
    first = await adapter.instances()
    n = len(f.state.requests)
    assert await adapter.instances() == first and len(f.state.requests) == n
    assert adapter.client.stats.cache_hits == 6  # info + list + 4 inspects
    await adapter.close()


async def test_check_and_estimates(fake: tuple[DockerFake, str], session: aiohttp.ClientSession) -> None:
    _, sock = fake
    image = "nvcr.io/nvidia/pytorch:24.05-py3"
    adapter = DockerAdapter(account(socket=sock, prices={image: "2.40"}, currency="eur"), session)
    checks = await adapter.check()
    assert [(c.name, c.ok, c.status) for c in checks] == [("version", True, 200), ("containers", True, 200)]
    insts = {i.instance_id: i for i in await adapter.instances()}
    assert (insts[TRAINER].hourly_price, insts[TRAINER].price_source, insts[TRAINER].currency) == (
        Decimal("2.40"),
        PriceSource.CONFIG,
        "EUR",
    )
    (line,) = await adapter.billing()
    assert line.kind == BillingKind.ESTIMATE and line.resource_id == TRAINER and line.currency == "EUR"
    assert line.period_start == month_start(line.period_end)
    start = max(line.period_start, datetime.fromtimestamp(1740823200, UTC))
    hours = Decimal(str((line.period_end - start).total_seconds())) / Decimal(3600)
    assert line.amount == (Decimal("2.40") * hours).quantize(Decimal("0.000001"))
    assert [(p.instance_type, p.hourly_price) for p in await adapter.prices()] == [(image, Decimal("2.40"))]
    await adapter.close()
    assert await DockerAdapter(account(socket=sock), session).billing() == []


async def test_tcp_daemon_through_base_url_uses_the_shared_session(session: aiohttp.ClientSession) -> None:
    f = DockerFake()
    async with FakeServer(f) as srv:
        adapter = DockerAdapter(account(base_url=srv.url, api_version="v1.45"), session)
        assert len(await adapter.instances()) == 4
        assert adapter._own_session is None and adapter.client.session is session
        assert f.state.requests[0].path == "/v1.45/info"
        f.state.fail_next, f.state.fail_times = (400, {"message": "bad"}), 1
        adapter.client.clear_cache()
        with pytest.raises(ApiError):
            await adapter.instances()
        await adapter.close()


def test_validate_api_config_messages() -> None:
    api = {"socket": "docker.sock", "api_version": "latest", "host_gpu_count": -1, "token": "x"}
    got = {str(p) for p in DockerAdapter.validate_api_config(api, "accounts[0].api")}
    assert got == {
        "accounts[0].api.socket: expected an absolute path to the Docker socket, got 'docker.sock'",
        "accounts[0].api.api_version: expected a version such as \"1.43\", got 'latest'",
        "accounts[0].api.host_gpu_count: expected an integer >= 0, got integer",
        "accounts[0].api.token: unknown key",
    }
    assert DockerAdapter.validate_api_config({}, "a") == []
    assert [str(p) for p in DockerAdapter.validate_api_config({"api_version": 1.43}, "a")] == [
        'a.api_version: expected a version such as "1.43", got 1.43'
    ]


def test_registered_through_its_plugin_module() -> None:
    pm = build_plugin_manager(False, default_plugins=("multicloud_collector.providers.docker.plugin",))
    assert Registry(pm).adapters == {"docker": DockerAdapter}


_REQ = st.fixed_dictionaries(
    {
        "Driver": st.sampled_from(["nvidia", "", "other"]),
        "Count": st.integers(min_value=-1, max_value=8),
        "DeviceIDs": st.one_of(st.none(), st.lists(st.sampled_from(["0", "1", "2", "GPU-abc"]), max_size=4)),
        "Capabilities": st.sampled_from([[["gpu"]], [["compute"]], []]),
    }
)


@given(st.lists(_REQ, max_size=4), st.integers(min_value=0, max_value=16))
def test_gpu_requests_counts(reqs: list[dict[str, Any]], host: int) -> None:
    count, labels = gpu_requests(reqs, host)
    expected = 0
    for r in reqs:
        if r["Driver"] != "nvidia" and ["gpu"] not in r["Capabilities"]:
            continue
        if r["DeviceIDs"]:
            expected += len(r["DeviceIDs"])
        elif r["Count"] == -1:
            expected += host
        elif r["Count"] > 0:
            expected += r["Count"]
    assert count == expected
    assert ("gpu_driver" in labels) == any(
        r["Driver"] == "nvidia" or ["gpu"] in r["Capabilities"] for r in reqs
    )


def test_gpu_requests_ignores_junk() -> None:
    assert gpu_requests(None) == (0, {})
    assert gpu_requests(["x", {"Driver": "nvidia", "Count": "2"}]) == (0, {"gpu_driver": "nvidia"})
