"""Shared fixtures: loopback aiohttp servers, a client session, and real exporter/Prometheus processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from support.services import (
    NODE_EXPORTER_BIN,
    PROMETHEUS_BIN,
    AppServers,
    Process,
    StaticServer,
    fixture_bytes,
    have_binary,
    node_exporter,
    prometheus,
    wait_for_series,
)


@pytest.fixture
async def app_servers() -> AsyncIterator[AppServers]:
    servers = AppServers()
    try:
        yield servers
    finally:
        await servers.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, force_close=False)) as s:
        yield s


@pytest.fixture(scope="session")
def node_exporter_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    if not have_binary(NODE_EXPORTER_BIN):
        pytest.skip(f"{NODE_EXPORTER_BIN} not installed")
    with node_exporter(tmp_path_factory.mktemp("node_exporter")) as proc:
        yield proc


@pytest.fixture(scope="session")
def dcgm_static() -> Iterator[StaticServer]:
    body = fixture_bytes("h100_8gpu.prom")
    with StaticServer({"/metrics": (body, "text/plain; version=0.0.4; charset=utf-8")}) as srv:
        yield srv


@pytest.fixture(scope="session")
def prometheus_proc(
    tmp_path_factory: pytest.TempPathFactory, node_exporter_proc: Process, dcgm_static: StaticServer
) -> Iterator[Process]:
    """A real Prometheus scraping the real node_exporter and the DCGM fixture, with data present."""
    if not have_binary(PROMETHEUS_BIN):
        pytest.skip(f"{PROMETHEUS_BIN} not installed")
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    jobs = {"node": f"127.0.0.1:{node_exporter_proc.port}", "dcgm": dcgm_static.hostport}
    with prometheus(workdir, jobs) as proc:
        wait_for_series(proc.url, 'up{job="node"} == 1')
        wait_for_series(proc.url, "DCGM_FI_DEV_GPU_UTIL", min_results=8)
        yield proc
