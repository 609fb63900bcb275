"""ApiClient against a real loopback server: retries, 429 waits per header style, cache, errors, pages."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fakes.server import FakeApi, FakeServer, FakeUnixServer
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from multicloud_collector.providers.http import (
    ApiClient,
    ApiError,
    error_detail,
    paginate_continue,
    paginate_cursor,
    paginate_pages,
    retry_wait,
)
from multicloud_collector.secrets import Secret

TOKEN = "tok-http-test-9f8e7d6c"
NOW = 1_700_000_000.0


class Demo(FakeApi):
    """A tiny API with the shapes the pagination helpers walk."""

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v2/account", self.account)
        router.add_get("/v2/items", self.cursor_items)
        router.add_get("/v2/pages", self.numbered)
        router.add_get("/api/v1/nodes", self.k8s_nodes)
        router.add_get("/v2/echo-secret", self.echo_secret)
        router.add_get("/v2/notjson", self.notjson)
        router.add_get("/v2/slow", self.slow)
        router.add_get("/v2/loop", self.loop)
        router.add_post("/graphql", self.graphql)
        self.release = asyncio.Event()

    async def account(self, request: web.Request) -> web.Response:
        return web.json_response({"account": {"name": "demo", "n": len(self.state.requests)}})

    async def cursor_items(self, request: web.Request) -> web.Response:
        start = int(request.query.get("cursor", "0"))
        size = self.page_size(request, "per_page", 2, 500)
        items = list(range(7))[start : start + size]
        nxt = str(start + size) if start + size < 7 else ""
        return web.json_response({"items": items, "meta": {"links": {"next": nxt}}})

    async def numbered(self, request: web.Request) -> web.Response:
        page = int(request.query["page"])
        size = int(request.query["per_page"])
        items = list(range(5))[(page - 1) * size : page * size]
        return web.json_response({"rows": items, "pages": (5 + size - 1) // size})

    async def k8s_nodes(self, request: web.Request) -> web.Response:
        start = int(request.query.get("continue", "0"))
        limit = int(request.query["limit"])
        items = [{"name": f"n{i}"} for i in range(5)][start : start + limit]
        cont = str(start + limit) if start + limit < 5 else ""
        return web.json_response({"items": items, "metadata": {"continue": cont}})

    async def echo_secret(self, request: web.Request) -> web.Response:
        return self.error(403, f"key {request.headers['Authorization']} lacks scope")

    async def notjson(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    async def slow(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.json_response({})

    async def loop(self, request: web.Request) -> web.Response:
        return web.json_response({"items": [1], "next": "same"})

    async def graphql(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"data": {"echo": body["query"]}})


class Recorder:
    """An injectable sleep that records waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def fake() -> AsyncIterator[tuple[Demo, FakeServer]]:
    demo = Demo(token=TOKEN)
    async with FakeServer(demo) as srv:
        yield demo, srv
        demo.release.set()


def client(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[ApiClient, Recorder]:
    rec = Recorder()
    kw.setdefault("headers", {"Authorization": Secret(f"Bearer {TOKEN}")})
    kw.setdefault("wall_clock", lambda: NOW)
    kw.setdefault("rng", random.Random(4))
    return ApiClient(session, url + "/v2", provider="demo", sleep=rec, **kw), rec


async def test_get_json_sends_revealed_auth_and_accept(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    api, _ = client(session, srv.url)
    data = await api.get_json("/account")
    assert data["account"]["name"] == "demo"
    sent = demo.state.requests[-1]
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/json"
    assert api.stats.requests == 1 and api.stats.last_latency_s is not None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 12, UTC), usegmt=True)}, 12.0),
        ({"RateLimit-Reset": "3"}, 3.0),  # DigitalOcean / Hetzner style: delta... or epoch below
        ({"ratelimit-reset": str(int(NOW + 9))}, 9.0),
        ({"X-RateLimit-Reset": str(int(NOW + 4))}, 4.0),  # Linode: epoch seconds
        ({"X-RateLimit-Reset": "2"}, 2.0),
        ({"Retry-After": "120"}, 30.0),  # capped by max_retry_wait
    ],
)
async def test_429_waits_as_the_headers_say(
    fake: tuple[Demo, FakeServer], session, headers: dict[str, str], expected: float
) -> None:
    demo, srv = fake
    demo.rate_limit_headers = lambda: headers  # type: ignore[method-assign]
    demo.state.rate_limit_next = 1
    api, rec = client(session, srv.url, max_retry_wait=30.0)
    data = await api.get_json("/account")
    assert data["account"]["name"] == "demo"
    assert rec.waits == [pytest.approx(expected, abs=0.01)]
    assert api.stats.rate_limited == 1 and api.stats.retries == 1
    assert demo.state.count("/v2/account") == 2


async def test_429_without_headers_uses_jittered_backoff(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    demo.state.retry_after = None
    demo.state.rate_limit_next = 3
    api, rec = client(session, srv.url, max_tries=4)
    await api.get_json("/account")
    assert len(rec.waits) == 3
    for attempt, wait in enumerate(rec.waits, start=1):
        assert 0.0 <= wait <= 0.5 * 2 ** (attempt - 1)
    assert len(set(rec.waits)) == 3  # jitter, not a fixed schedule


async def test_rate_limit_exhausts_tries(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    demo.state.rate_limit_next = 10
    api, rec = client(session, srv.url, max_tries=3)
    with pytest.raises(ApiError) as err:
        await api.get_json("/account")
    assert str(err.value) == "429 from /v2/account: rate limited (Rate limit exceeded)"
    assert err.value.status == 429 and len(rec.waits) == 2 and demo.state.count("/v2/account") == 3


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried(fake: tuple[Demo, FakeServer], session, status: int) -> None:
    demo, srv = fake
    demo.state.fail_next = (status, {"error": "boom"})
    demo.state.fail_times = 2
    api, rec = client(session, srv.url)
    assert (await api.get_json("/account"))["account"]["name"] == "demo"
    assert len(rec.waits) == 2 and api.stats.retries == 2


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"error": "Invalid API token"}, "401 from /v2/account: token rejected (Invalid API token)"),
        (
            403,
            {"id": "forbidden", "message": "You do not have access"},
            "403 from /v2/account: permission denied (You do not have access)",
        ),
        (404, {"errors": [{"reason": "x", "message": "Not found"}]}, "404 from /v2/account: not found"),
        (400, b"", "400 from /v2/account: bad request"),
        (418, {"detail": "teapot"}, "418 from /v2/account: request failed (teapot)"),
    ],
)
async def test_client_errors_raise_at_once_with_exact_message(
    fake: tuple[Demo, FakeServer], session, status: int, body: Any, message: str
) -> None:
    demo, srv = fake
    demo.state.fail_next = (status, body)
    api, rec = client(session, srv.url)
    with pytest.raises(ApiError) as err:
        await api.get_json("/account", {"api_key": "query-secret"})
    assert str(err.value) == message
    assert rec.waits == [] and demo.state.count("/v2/account") == 1
    assert err.value.is_auth == (status in (401, 403))


async def test_real_auth_failure_and_secret_never_in_message(fake: tuple[Demo, FakeServer], session) -> None:
    _, srv = fake
    api, _ = client(session, srv.url, headers={"Authorization": Secret("Bearer wrong-token-abcdef")})
    with pytest.raises(ApiError) as err:
        await api.get_json("/account")
    assert str(err.value) == "401 from /v2/account: token rejected (Invalid API token)"
    good, _ = client(session, srv.url)
    with pytest.raises(ApiError) as err2:
        await good.get_json("/echo-secret")  # the provider echoes the credential back
    assert TOKEN not in str(err2.value) and "***" in str(err2.value)
    assert str(err2.value).startswith("403 from /v2/echo-secret: permission denied")


async def test_connection_refused_is_retried_then_reported(session) -> None:
    from support.services import free_port

    api, rec = client(session, f"http://127.0.0.1:{free_port()}", max_tries=3)
    with pytest.raises(ApiError) as err:
        await api.get_json("/account")
    assert err.value.status is None
    assert str(err.value) == "no response from /v2/account: connection failed (ClientConnectorError)"
    assert len(rec.waits) == 2


async def test_timeout_is_reported(fake: tuple[Demo, FakeServer], session) -> None:
    _, srv = fake
    api, _ = client(session, srv.url, timeout=0.2, max_tries=1)
    with pytest.raises(ApiError) as err:
        await api.get_json("/slow")
    assert str(err.value) == "no response from /v2/slow: timeout"


async def test_invalid_json_is_an_api_error(fake: tuple[Demo, FakeServer], session) -> None:
    _, srv = fake
    api, _ = client(session, srv.url)
    with pytest.raises(ApiError, match=r"^200 from /v2/notjson: invalid JSON in response$"):
        await api.get_json("/notjson")


async def test_cache_hit_within_ttl_and_miss_after(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    clock = Clock()
    api, _ = client(session, srv.url, cache_ttl=300.0, clock=clock)
    first = await api.get_json("/account")
    clock.t += 299
    assert await api.get_json("/account") == first
    assert api.stats.cache_hits == 1 and demo.state.count("/v2/account") == 1
    await api.get_json("/account", {"x": 1})  # other params: other key
    await api.get_json("/account", cache=False)  # bypass
    assert demo.state.count("/v2/account") == 3
    clock.t += 2
    second = await api.get_json("/account")
    assert second != first and demo.state.count("/v2/account") == 4
    api.clear_cache()
    await api.get_json("/account")
    assert demo.state.count("/v2/account") == 5


async def test_cache_disabled_with_zero_ttl(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    api, _ = client(session, srv.url, cache_ttl=0)
    await api.get_json("/account")
    await api.get_json("/account")
    assert demo.state.count("/v2/account") == 2 and api.stats.cache_hits == 0


async def test_errors_are_not_cached(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    demo.state.fail_next = (401, {"error": "nope"})
    api, _ = client(session, srv.url)
    with pytest.raises(ApiError):
        await api.get_json("/account")
    assert (await api.get_json("/account"))["account"]["name"] == "demo"


async def test_post_json(fake: tuple[Demo, FakeServer], session) -> None:
    _, srv = fake
    api = ApiClient(session, srv.url, provider="demo", headers={"Authorization": f"Bearer {TOKEN}"})
    assert await api.post_json("/graphql", {"query": "{ myself { id } }"}) == {
        "data": {"echo": "{ myself { id } }"}
    }


async def test_paginate_cursor(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    api, _ = client(session, srv.url)
    items = await paginate_cursor(
        api,
        "/items",
        items_key="items",
        params={"per_page": 3},
        next_cursor=lambda d: d["meta"]["links"]["next"],
    )
    assert items == list(range(7))
    assert [r.query.get("cursor") for r in demo.state.requests] == [None, "3", "6"]


async def test_paginate_cursor_stops_on_repeated_cursor(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    api, _ = client(session, srv.url)
    items = await paginate_cursor(api, "/loop", items_key="items", next_cursor=lambda d: d["next"])
    assert items == [1, 1] and demo.state.count("/v2/loop") == 2


async def test_paginate_pages(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    api, _ = client(session, srv.url)
    items = await paginate_pages(
        api, "/pages", items_key="rows", size=2, last_page=lambda d, p: p >= d["pages"]
    )
    assert items == [0, 1, 2, 3, 4]
    assert [r.query["page"] for r in demo.state.requests] == ["1", "2", "3"]


async def test_paginate_continue(fake: tuple[Demo, FakeServer], session) -> None:
    demo, srv = fake
    api = ApiClient(session, srv.url, provider="k8s", headers={"Authorization": f"Bearer {TOKEN}"})
    items = await paginate_continue(api, "/api/v1/nodes", limit=2)
    assert [i["name"] for i in items] == ["n0", "n1", "n2", "n3", "n4"]
    assert [r.query.get("continue") for r in demo.state.requests] == [None, "2", "4"]


async def test_items_key_must_be_a_list(fake: tuple[Demo, FakeServer], session) -> None:
    _, srv = fake
    api, _ = client(session, srv.url)
    with pytest.raises(ApiError, match="'account' is not a list"):
        await paginate_cursor(api, "/account", items_key="account", next_cursor=lambda d: None)


def test_url_for_keeps_absolute_links() -> None:
    api = ApiClient(None, "https://api.example.com/v2/", provider="x")  # type: ignore[arg-type]
    assert api.url_for("/instances") == "https://api.example.com/v2/instances"
    assert (
        api.url_for("https://api.example.com/v2/instances?page=2")
        == "https://api.example.com/v2/instances?page=2"
    )


def test_error_detail_shapes() -> None:
    assert error_detail(b'{"error": {"code": "rate_limit_exceeded", "message": "slow down"}}') == "slow down"
    assert error_detail(b'{"errors": ["first"]}') == "first"
    assert error_detail(b"plain words") == "plain words"
    assert error_detail(b"<html>502</html>") == ""
    assert error_detail(b"x" * 500).endswith("...")
    assert error_detail(b"[]") == ""


def test_retry_wait_ignores_garbage() -> None:
    assert retry_wait(CIMultiDict({"Retry-After": "soon"}), now=NOW) is None
    assert retry_wait(CIMultiDict({"RateLimit-Reset": "nan"}), now=NOW) is None
    assert retry_wait(CIMultiDict({"Retry-After": "soon", "X-RateLimit-Reset": "5"}), now=NOW) == 5.0
    assert retry_wait(CIMultiDict({"X-RateLimit-Reset": str(NOW - 50)}), now=NOW) == 0.0
    assert retry_wait(CIMultiDict(), now=NOW) is None


@given(st.floats(min_value=0, max_value=10**6, allow_nan=False))
def test_retry_wait_delta_seconds_property(delta: float) -> None:
    assert retry_wait(CIMultiDict({"Retry-After": repr(delta)}), now=NOW) == pytest.approx(delta)
    if delta < 1e8:
        epoch = NOW + delta
        got = retry_wait(CIMultiDict({"X-RateLimit-Reset": repr(epoch)}), now=NOW)
        assert got == pytest.approx(delta, abs=1e-3)


async def test_unix_socket_server(tmp_path) -> None:
    demo = Demo(token=TOKEN)
    sock = tmp_path / "api.sock"
    async with FakeUnixServer(demo, sock) as srv:
        conn = aiohttp.UnixConnector(path=srv.path)
        async with aiohttp.ClientSession(connector=conn) as unix_session:
            api = ApiClient(
                unix_session, srv.url + "/v2", provider="docker", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert (await api.get_json("/account"))["account"]["name"] == "demo"
    assert not sock.exists()
