"""bench/farm.py: payload templates, the bare HTTP server in-process, and the script as a process."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.util
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

FARM_PATH = Path(__file__).resolve().parent.parent / "bench" / "farm.py"
DEADLINE_S = 20.0


def _load_farm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_farm", FARM_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_farm"] = module
    spec.loader.exec_module(module)
    return module


farm_mod = _load_farm()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _types(text: str) -> dict[str, str]:
    return {s.name: fam.type for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.mark.parametrize("kind", ["node", "dcgm"])
def test_template_renders_every_fixture_sample(kind: str) -> None:
    fixture = (farm_mod.FIXTURES / farm_mod.FIXTURE_FILES[kind]).read_text()
    tpl = farm_mod.parse_template(fixture, 4)
    original = _samples(fixture)
    rendered = _samples(tpl.render(0, 0).decode())
    assert rendered.keys() == original.keys()
    assert len(original) >= (500 if kind == "node" else 160)


@pytest.mark.parametrize("kind", ["node", "dcgm"])
def test_counters_grow_with_steps_and_gauges_vary_by_variant(kind: str) -> None:
    fixture = (farm_mod.FIXTURES / farm_mod.FIXTURE_FILES[kind]).read_text()
    types = _types(fixture)
    tpl = farm_mod.parse_template(fixture, 4)
    step0 = _samples(tpl.render(1, 0).decode())
    step5 = _samples(tpl.render(2, 5).decode())
    counters = [
        k
        for k in step0
        if types[k[0]] in ("counter", "unknown", "histogram", "summary") and "quantile" not in dict(k[1])
    ]
    assert counters
    assert all(step5[k] >= step0[k] for k in counters)
    assert any(step5[k] > step0[k] for k in counters)
    v0, v1 = _samples(tpl.render(0, 0).decode()), _samples(tpl.render(1, 0).decode())
    changed = [k for k in v0 if v0[k] != v1[k]]
    assert changed and all(types[k[0]] == "gauge" for k in changed)
    assert all(v0[k] == v1[k] for k in v0 if k[0].endswith("_info"))


def test_template_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not understood"):
        farm_mod.parse_template("metric{broken\n", 2)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"targets": 0}, "--targets"),
        ({"targets": 1, "kind": "gpu"}, "--kind"),
        ({"targets": 1, "host": "0.0.0.0"}, "--host"),
        ({"targets": 1, "variants": 0}, "--variants"),
    ],
)
def test_farm_arguments_are_checked(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        farm_mod.Farm(**kwargs)


@pytest.fixture
async def farm() -> AsyncIterator[object]:
    f = farm_mod.Farm(10, "mixed", ports=3, step_seconds=3600.0)
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


async def test_farm_serves_every_url(farm: object) -> None:
    urls: list[str] = farm.urls  # type: ignore[attr-defined]
    assert len(urls) == 10 and len({u.split("/")[2] for u in urls}) == 3
    async with aiohttp.ClientSession() as s:
        for i, url in enumerate(urls):
            async with s.get(url) as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                text = await r.text()
            names = {f.name for f in text_string_to_metric_families(text)}
            want = "node_cpu_seconds" if i % 2 == 0 else "DCGM_FI_DEV_GPU_UTIL"
            assert want in names
        async with s.get(urls[0].rsplit("/", 3)[0] + "/-/stats") as r:
            stats = await r.json()
    assert stats["requests"] == 10 and stats["by_kind"] == {"node": 5, "dcgm": 5}


async def test_farm_gzip_head_404_and_405(farm: object) -> None:
    url: str = farm.urls[1]  # type: ignore[attr-defined]
    base = url.rsplit("/", 3)[0]
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.get(url, headers={"Accept-Encoding": "gzip"}) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            body = gzip.decompress(await r.read()).decode()
        assert "DCGM_FI_DEV_POWER_USAGE" in body
        async with s.head(url) as r:
            assert r.status == 200 and int(r.headers["Content-Length"]) > 1000
        async with s.get(base + "/node/999/metrics") as r:
            assert r.status == 404
        async with s.post(url, data=b"x") as r:
            assert r.status == 405


async def _raw(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=DEADLINE_S)  # until the farm closes
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return data


async def test_farm_keep_alive_pipelining_and_close(farm: object) -> None:
    port: int = farm.ports[0]  # type: ignore[attr-defined]
    path = farm.urls[0].split(str(port), 1)[1].encode()  # type: ignore[attr-defined]
    two = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = await _raw(port, two + last)
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(b"Connection: close") == 1
    data = await _raw(port, b"GET " + path + b" HTTP/1.0\r\n\r\n")  # HTTP/1.0 closes by default
    assert data.startswith(b"HTTP/1.1 200 OK")
    data = await _raw(port, b"NONSENSE\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400")
    data = await _raw(port, b"GET /x HTTP/1.1\r\nX: " + b"a" * 20000)
    assert data.startswith(b"HTTP/1.1 431")


async def test_farm_port_base_is_honoured() -> None:
    probe = farm_mod.Farm(1, "node", ports=1)
    await probe.start()
    free = probe.ports[0]
    await probe.stop()
    f = farm_mod.Farm(2, "node", ports=1, port_base=free)
    try:
        await f.start()
        assert f.ports == [free]
        clash = farm_mod.Farm(1, "node", ports=1, port_base=free)
        with pytest.raises(OSError):
            await clash.start()
    finally:
        await f.stop()


async def _line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout=DEADLINE_S)).decode()


async def test_farm_process_ready_serve_and_sigterm(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.txt"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FARM_PATH),
        "--targets",
        "7",
        "--kind",
        "dcgm",
        "--ports",
        "2",
        "--urls-file",
        str(urls_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await _line(proc.stdout)
        assert line.startswith("FARM READY "), line
        ready = json.loads(line.removeprefix("FARM READY "))
        assert ready["count"] == 7 and ready["urls_file"] == str(urls_file) and len(ready["ports"]) == 2
        urls = urls_file.read_text().split()
        assert len(urls) == 7
        async with aiohttp.ClientSession() as s:
            for url in urls:
                async with s.get(url) as r:
                    assert r.status == 200 and "DCGM_FI_DEV_GPU_UTIL" in await r.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=DEADLINE_S) == 0
        stopped = await _line(proc.stdout)
        assert stopped.startswith("FARM STOPPED ")
        assert json.loads(stopped.removeprefix("FARM STOPPED "))["requests"] == 7
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_farm_process_prints_urls_inline_and_rejects_bad_args() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FARM_PATH),
        "--targets",
        "3",
        "--kind",
        "mixed",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        ready = json.loads((await _line(proc.stdout)).removeprefix("FARM READY "))
        assert len(ready["urls"]) == 3 and ready["kinds"] == ["node", "dcgm", "node"]
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=DEADLINE_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    bad = await asyncio.create_subprocess_exec(
        sys.executable, str(FARM_PATH), "--targets", "0", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(bad.communicate(), timeout=DEADLINE_S)
    assert bad.returncode == 2 and b"--targets" in err
