"""Run a fake provider API on 127.0.0.1 (or a unix socket) and give fakes a common base.

``FakeApi`` holds what every provider fake needs: an auth check, a request log and knobs a test
flips to provoke behaviour (``rate_limit_next``, ``fail_next``, ``page_size``). A provider fake
subclasses it, adds its routes, and overrides ``error_body`` / ``rate_limit_headers`` so errors
look like that provider's documented shapes.

    fake = VultrFake()
    async with FakeServer(fake) as srv:          # srv.url == "http://127.0.0.1:<port>"
        fake.state.rate_limit_next = 1           # next request answers 429 with Vultr's headers
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAKE_KEY: web.AppKey[FakeApi] = web.AppKey("fake", None)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(slots=True)
class FakeState:
    """Knobs and the request log of one fake. Counters count down as requests consume them."""

    token: str = "test-token"
    rate_limit_next: int = 0  # answer the next N requests with 429 + rate_limit_headers()
    retry_after: float | None = 1.0  # what rate_limit_headers() announces (None: no header)
    fail_next: tuple[int, Any] | None = None  # (status, body) for the next fail_times requests
    fail_times: int = 1
    page_size: int | None = None  # force a page size (else the client's per_page, capped)
    requests: list[RecordedRequest] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)


class FakeApi:
    """Base of provider fakes: middleware for logging, knobs and auth; ``self.app`` to serve."""

    public_paths: frozenset[str] = frozenset()

    def __init__(self, *, token: str = "test-token") -> None:
        self.state = FakeState(token=token)
        self.app = web.Application(middlewares=[self._middleware])
        self.app[FAKE_KEY] = self
        self.routes(self.app.router)

    # ---- to override -------------------------------------------------------------------------

    def routes(self, router: web.UrlDispatcher) -> None:
        """Add the provider's routes."""

    def error_body(self, status: int, message: str) -> Any:
        """The provider's error JSON for ``status``."""
        return {"error": message, "status": status}

    def rate_limit_headers(self) -> dict[str, str]:
        """Headers sent with a provoked 429."""
        return {} if self.state.retry_after is None else {"Retry-After": f"{self.state.retry_after:g}"}

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.state.token}"

    # ---- helpers for subclasses ----------------------------------------------------------------

    def error(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.json_response(self.error_body(status, message), status=status, headers=headers)

    def page_size(self, request: web.Request, param: str, default: int, maximum: int) -> int:
        if self.state.page_size is not None:
            return self.state.page_size
        try:
            size = int(request.query.get(param, default))
        except ValueError:
            size = default
        return max(1, min(size, maximum))

    # ---- middleware ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else b""
        st = self.state
        st.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        if st.rate_limit_next > 0:
            st.rate_limit_next -= 1
            return self.error(429, "Rate limit exceeded", self.rate_limit_headers())
        if st.fail_next is not None:
            status, fail_body = st.fail_next
            st.fail_times -= 1
            if st.fail_times <= 0:
                st.fail_next, st.fail_times = None, 1
            if isinstance(fail_body, bytes | str):
                return web.Response(status=status, body=fail_body, content_type="application/json")
            return web.json_response(fail_body, status=status)
        if request.path not in self.public_paths and not self.authorized(request):
            return self.error(401, "Invalid API token")
        return await handler(request)


def _app_of(app: web.Application | FakeApi) -> web.Application:
    return app.app if isinstance(app, FakeApi) else app


class FakeServer:
    """``async with FakeServer(app) as srv``: serve an aiohttp app on 127.0.0.1:<free port>."""

    def __init__(self, app: web.Application | FakeApi, host: str = "127.0.0.1") -> None:
        self.app = _app_of(app)
        self.host = host
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> FakeServer:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        sock = _first_socket(site)
        self.port = sock.getsockname()[1]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class FakeUnixServer:
    """``async with FakeUnixServer(app, path) as srv``: serve on a unix socket (Docker Engine fake).

    Clients connect with ``aiohttp.UnixConnector(path=srv.path)`` and use ``srv.url`` as base URL.
    """

    def __init__(self, app: web.Application | FakeApi, path: str | Path) -> None:
        self.app = _app_of(app)
        self.path = str(path)
        self.url = "http://localhost"
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeUnixServer:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.UnixSite(self._runner, self.path).start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # aiohttp leaves the socket file behind


def _first_socket(site: web.TCPSite) -> socket.socket:
    server = site._server  # aiohttp keeps the asyncio server here; no public accessor for the port
    assert server is not None and server.sockets, "fake server did not bind"  # type: ignore[union-attr]
    return server.sockets[0]  # type: ignore[union-attr,no-any-return]


def json_bytes(data: Any) -> bytes:
    return json.dumps(data).encode()


class Sleeps:
    """Records requested waits instead of sleeping: 429 tests assert the wait, not the clock."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
