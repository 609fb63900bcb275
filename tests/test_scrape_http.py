"""scrape.http.fetch against real loopback servers that misbehave in the ways exporters do."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import subprocess
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from support.services import AppServers, free_port

from multicloud_collector.scrape.http import SCRAPE_ACCEPT, FetchError, fetch

MiB = 1024 * 1024


def gzip_bomb(decompressed: int) -> bytes:
    """``decompressed`` zero bytes, gzip-compressed (about 1000:1)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * MiB
    parts = [co.compress(chunk) for _ in range(decompressed // MiB)]
    parts.append(co.flush())
    return b"".join(parts)


async def get(session: aiohttp.ClientSession, url: str, **kw: Any) -> Any:
    opts: dict[str, Any] = {"timeout": 2.0, "max_bytes": MiB, "accept": SCRAPE_ACCEPT}
    opts.update(kw)
    return await fetch(session, url, **opts)


async def test_ok_sends_prometheus_headers(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.Response(body=b"up 1\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    res = await get(session, base + "/metrics", timeout=7.5, headers={"X-Custom": "v"})
    assert res.body == b"up 1\n"
    assert res.status == 200
    assert res.nbytes == 5
    assert res.content_type is not None and res.content_type.startswith("text/plain")
    assert seen["Accept"] == SCRAPE_ACCEPT
    assert "gzip" in seen["Accept-Encoding"]
    assert seen["X-Prometheus-Scrape-Timeout-Seconds"] == "7.5"
    assert seen["X-Custom"] == "v"


async def test_gzip_body_is_decompressed(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    plain = b"".join(b"metric_%d 1\n" % i for i in range(1000))

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(plain), headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    res = await get(session, base + "/metrics")
    assert res.body == plain
    assert res.nbytes == len(plain)


async def test_declared_length_over_limit_fails_without_reading(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (2 * MiB))

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    with pytest.raises(FetchError) as ei:
        await get(session, base + "/metrics")
    assert ei.value.reason == "body_limit"
    assert "127.0.0.1" in ei.value.message


async def test_endless_body_stops_at_limit_with_bounded_memory(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    """A 100 MB chunked body: the fetch aborts just past the cap and never buffers the rest."""
    written = 0
    total = 100 * MiB

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal written
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"a" * (256 * 1024)
        try:
            while written < total:
                await resp.write(chunk)
                written += len(chunk)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as ei:
            await get(session, base + "/metrics", max_bytes=2 * MiB, timeout=10.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ei.value.reason == "body_limit"
    assert peak < 16 * MiB, f"peak {peak} bytes while reading a capped body"
    assert written < total  # the server was cut off, not drained


async def test_gzip_bomb_fails_with_body_limit_and_bounded_memory(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    bomb = gzip_bomb(64 * MiB)
    assert len(bomb) < MiB

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as ei:
            await get(session, base + "/metrics", max_bytes=MiB, timeout=10.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ei.value.reason == "body_limit"
    assert "decompressed" in ei.value.message
    assert peak < 16 * MiB, f"peak {peak} bytes for a 64 MiB bomb"


async def test_invalid_gzip_is_protocol_error(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"this is not gzip at all" * 10, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    with pytest.raises(FetchError) as ei:
        await get(session, base + "/metrics")
    assert ei.value.reason == "protocol"
    assert not ei.value.transient


async def test_slow_loris_fails_at_the_deadline(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    """Bytes keep trickling, so no read timeout would fire; the total deadline must."""
    stop_trickle = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            while not stop_trickle.is_set():
                await resp.write(b"#")
                # trickle pace of the hostile target, not test synchronization
                await asyncio.sleep(0.02)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    try:
        with pytest.raises(FetchError) as ei:
            await get(session, base + "/metrics", timeout=0.3)
    finally:
        stop_trickle.set()
    assert ei.value.reason == "timeout"
    assert "0.3s" in ei.value.message
    assert ei.value.transient


async def test_connection_reset_mid_body(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100000"})
        await resp.prepare(request)
        await resp.write(b"node_load1 0.5\n")
        assert request.transport is not None
        request.transport.abort()  # RST-like close with 99 985 bytes still owed
        return resp

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    with pytest.raises(FetchError) as ei:
        await get(session, base + "/metrics")
    assert ei.value.reason == "connection"
    assert ei.value.transient


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    port = free_port()  # nothing listens here
    with pytest.raises(FetchError) as ei:
        await get(session, f"http://127.0.0.1:{port}/metrics")
    assert ei.value.reason == "connection"
    assert f"127.0.0.1:{port}" in ei.value.message


@pytest.mark.parametrize(("status", "transient"), [(404, False), (500, True), (503, True), (401, False)])
async def test_http_status(
    app_servers: AppServers, session: aiohttp.ClientSession, status: int, transient: bool
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text="explanation")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    with pytest.raises(FetchError) as ei:
        await get(session, base + "/metrics")
    err = ei.value
    assert err.reason == "http_status"
    assert err.status == status
    assert err.message.startswith(f"HTTP {status}")
    assert err.transient is transient
    assert err.body == b"explanation"


async def test_redirect_is_not_followed(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    hits = 0

    async def elsewhere(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(text="up 1\n")

    other = web.Application()
    other.router.add_get("/secret", elsewhere)
    other_base = await app_servers.start(other)

    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(other_base + "/secret")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    with pytest.raises(FetchError) as ei:
        await get(session, base + "/metrics")
    assert ei.value.reason == "http_status"
    assert ei.value.status == 302
    assert hits == 0


async def test_secrets_in_url_never_reach_the_message(session: aiohttp.ClientSession) -> None:
    port = free_port()
    url = f"http://admin:hunter2-canary@127.0.0.1:{port}/metrics?token=tok-canary-123"
    with pytest.raises(FetchError) as ei:
        await get(session, url)
    text = str(ei.value)
    assert "hunter2-canary" not in text
    assert "tok-canary-123" not in text
    assert f"127.0.0.1:{port}/metrics" in text


class _FailingResolver(AbstractResolver):
    """Stands in for DNS: no query leaves the machine."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        raise OSError(socket.EAI_NONAME, f"Name or service not known: {host}")

    async def close(self) -> None:
        pass


async def test_dns_failure_is_reason_dns() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_FailingResolver())) as s:
        with pytest.raises(FetchError) as ei:
            await get(s, "http://exporter.invalid:9100/metrics")
    assert ei.value.reason == "dns"
    assert ei.value.transient
    assert "exporter.invalid" in ei.value.message


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_untrusted_certificate_is_reason_tls(
    self_signed: tuple[Path, Path], session: aiohttp.ClientSession
) -> None:
    key, cert = self_signed
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="up 1\n")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        with pytest.raises(FetchError) as ei:
            await get(session, f"https://127.0.0.1:{port}/metrics")
    finally:
        await runner.cleanup()
    assert ei.value.reason == "tls"
    assert not ei.value.transient


async def test_tls_to_plain_http_server_is_reason_tls(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    app = web.Application()
    base = await app_servers.start(app)
    with pytest.raises(FetchError) as ei:
        await get(session, base.replace("http://", "https://") + "/metrics")
    assert ei.value.reason == "tls"


async def test_unlimited_body_when_max_bytes_zero(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * (3 * MiB))

    app = web.Application()
    app.router.add_get("/metrics", handler)
    base = await app_servers.start(app)
    res = await get(session, base + "/metrics", max_bytes=0)
    assert res.nbytes == 3 * MiB


def test_classify_covers_every_reason() -> None:
    from multicloud_collector.scrape.http import _classify, _status_text

    assert _classify(aiohttp.ServerDisconnectedError())[0] == "connection"
    assert _classify(ConnectionResetError())[0] == "connection"
    assert _classify(aiohttp.InvalidURL("nope"))[0] == "protocol"
    assert _classify(ValueError("weird"))[0] == "protocol"
    assert _status_text(299) == "" and _status_text(404) == "Not Found"


async def test_invalid_url_is_protocol_error(session: aiohttp.ClientSession) -> None:
    with pytest.raises(FetchError) as ei:
        await get(session, "http://127.0.0.1:99999999/metrics")
    assert ei.value.reason == "protocol"
    assert "invalid URL" in str(ei.value)
