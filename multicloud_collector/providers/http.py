"""The one HTTP client every provider adapter uses: auth headers, retries, 429s, timeouts, cache, pages.

Eleven adapters must not grow eleven retry loops. ``ApiClient`` wraps the shared aiohttp session
with: secret headers revealed only on the wire, a per-call timeout, retries for 5xx and network
errors with full-jitter backoff, 429/503 waits taken from ``Retry-After`` (seconds or HTTP date)
or ``RateLimit-Reset``/``X-RateLimit-Reset`` (delta or epoch seconds), and a TTL cache of
successful responses so a CLI call right after a collection does not spend the rate budget again.
Errors become ``ApiError`` whose text ("401 from /v2/account: token rejected") is safe to show:
it holds the URL path only (never the query string or headers) and is passed through ``redact``.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog
from cachetools import TTLCache
from multidict import CIMultiDict

from multicloud_collector.secrets import Secret, redact

log = structlog.get_logger(__name__)

RETRY_STATUSES = frozenset({429, 503})
BACKOFF_BASE_S = 0.5
CACHE_MAX_ENTRIES = 512
ERROR_DETAIL_CHARS = 200
# Reset values above this are epoch seconds, below it a delta in seconds (1e9 s is 2001).
_EPOCH_THRESHOLD = 1_000_000_000
_RESET_HEADERS = ("RateLimit-Reset", "X-RateLimit-Reset")

_STATUS_REASONS = {
    400: "bad request",
    401: "token rejected",
    403: "permission denied",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    410: "gone",
    422: "unprocessable request",
    429: "rate limited",
}

Sleep = Callable[[float], Awaitable[None]]
Response = tuple[int, Mapping[str, str], bytes]


class ApiError(Exception):
    """A provider API call that failed; ``str(e)`` is "<status> from <path>: <reason>".

    ``status`` is None when no HTTP answer arrived ("no response from /v2/account: timeout").
    """

    def __init__(self, status: int | None, path: str, reason: str, *, provider: str = "") -> None:
        self.status = status
        self.path = path
        self.reason = redact(reason)
        self.provider = provider
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.status is None:
            return f"no response from {self.path}: {self.reason}"
        return f"{self.status} from {self.path}: {self.reason}"

    @property
    def is_auth(self) -> bool:
        return self.status in (401, 403)


@dataclass(slots=True)
class ApiStats:
    """Counters of one client, for ``mcc providers test`` and self-metrics."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    last_latency_s: float | None = None


def status_reason(status: int, body: bytes) -> str:
    """A short reason for an error status, with the provider's own message when the body has one."""
    generic = _STATUS_REASONS.get(status) or ("server error" if status >= 500 else "request failed")
    detail = error_detail(body)
    return f"{generic} ({detail})" if detail and detail.lower() != generic else generic


def error_detail(body: bytes) -> str:
    """The message in a provider error body: ``error``, ``error.message``, ``message``, ``errors[0]``..."""
    if not body:
        return ""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[: ERROR_DETAIL_CHARS * 2].decode("utf-8", "replace").strip()
        return "" if text.startswith("<") else _clip(text)
    return _clip(_find_message(data))


def _find_message(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return _find_message(data[0]) if data else ""
    if not isinstance(data, dict):
        return ""
    for key in ("message", "msg", "error", "errors", "detail", "reason", "error_description", "title"):
        if key in data:
            found = _find_message(data[key])
            if found:
                return found
    return ""


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_DETAIL_CHARS else text[: ERROR_DETAIL_CHARS - 3] + "..."


def retry_wait(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or a ``*RateLimit-Reset`` header.

    ``headers`` must be case-insensitive (aiohttp's are). ``now`` is the wall clock (epoch seconds).
    Returns None when no header gives a usable answer.
    """
    value = headers.get("Retry-After")
    if value is not None:
        wait = _seconds_or_date(value, now)
        if wait is not None:
            return wait
    for name in _RESET_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            reset = float(value.strip())
        except ValueError:
            continue
        if reset != reset or reset in (float("inf"), float("-inf")):
            continue
        return max(0.0, reset - now if reset >= _EPOCH_THRESHOLD else reset)
    return None


def _seconds_or_date(value: str, now: float) -> float | None:
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(text).timestamp() - now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


class ApiClient:
    """JSON over HTTP to one provider base URL, sharing the process's aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        provider: str,
        headers: Mapping[str, str | Secret] | None = None,
        timeout: float = 30.0,
        max_tries: int = 4,
        cache_ttl: float = 300.0,
        max_retry_wait: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.session = session
        # Per-request TLS trust (e.g. a cluster CA) on the shared session; None = system defaults.
        self.ssl_context = ssl_context
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.headers: dict[str, str | Secret] = dict(headers or {})
        self.timeout = timeout
        self.max_tries = max(1, max_tries)
        self.cache_ttl = cache_ttl
        self.max_retry_wait = max_retry_wait
        self.sleep = sleep  # public: tests inject a recorder to assert waits without waiting
        self._wall = wall_clock
        self._rng = rng or random.Random()
        self._cache: TTLCache[tuple[Any, ...], Response] | None = (
            TTLCache(maxsize=CACHE_MAX_ENTRIES, ttl=cache_ttl, timer=clock) if cache_ttl > 0 else None
        )
        self._stats = ApiStats()

    @property
    def stats(self) -> ApiStats:
        return self._stats

    def clear_cache(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    def url_for(self, path: str) -> str:
        """``base_url`` + ``path``; an absolute URL (a provider's "next" link) is used as is."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def get_json(
        self, path: str, params: Mapping[str, str | int] | None = None, *, cache: bool = True
    ) -> Any:
        _, _, body = await self.request("GET", path, params=params, cache=cache)
        return self._decode(path, body)

    async def post_json(self, path: str, body: Any, *, cache: bool = False) -> Any:
        _, _, raw = await self.request("POST", path, json=body, cache=cache)
        return self._decode(path, raw)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str | Secret] | None = None,
        cache: bool = False,
    ) -> Response:
        """One call with retries; returns (status, headers, body) of a 2xx/3xx answer or raises ApiError."""
        url = self.url_for(path)
        clean_params = {k: str(v) for k, v in (params or {}).items()}
        key = self._cache_key(method, url, clean_params, json) if cache and self._cache is not None else None
        if key is not None and self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                self._stats.cache_hits += 1
                return hit
        response = await self._with_retries(method, url, clean_params, json, headers)
        if key is not None and self._cache is not None:
            self._cache[key] = response
        return response

    # ---- internals --------------------------------------------------------------------------------

    @staticmethod
    def _cache_key(method: str, url: str, params: Mapping[str, str], json: Any) -> tuple[Any, ...]:
        body = orjson.dumps(json, option=orjson.OPT_SORT_KEYS) if json is not None else b""
        return (method.upper(), url, tuple(sorted(params.items())), body)

    def _wire_headers(self, extra: Mapping[str, str | Secret] | None) -> dict[str, str]:
        merged: dict[str, str] = {"Accept": "application/json"}
        for source in (self.headers, extra or {}):
            for name, value in source.items():
                merged[name] = value.reveal() if isinstance(value, Secret) else str(value)
        return merged

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        return self._rng.uniform(0.0, min(self.max_retry_wait, BACKOFF_BASE_S * 2 ** (attempt - 1)))

    def _decode(self, path: str, body: bytes) -> Any:
        if not body.strip():
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(
                200, _path_of(self.url_for(path)), "invalid JSON in response", provider=self.provider
            ) from exc

    async def _with_retries(
        self,
        method: str,
        url: str,
        params: Mapping[str, str],
        json: Any,
        extra_headers: Mapping[str, str | Secret] | None,
    ) -> Response:
        path = _path_of(url)
        wire_headers = self._wire_headers(extra_headers)
        attempt = 0
        while True:
            attempt += 1
            self._stats.requests += 1
            started = time.perf_counter()
            try:
                async with self.session.request(
                    method,
                    url,
                    ssl=self.ssl_context if self.ssl_context is not None else True,
                    params=params or None,
                    json=json,
                    headers=wire_headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                    allow_redirects=False,
                ) as resp:
                    body = await resp.read()
                    status = resp.status
                    resp_headers: Mapping[str, str] = CIMultiDict(resp.headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._stats.last_latency_s = time.perf_counter() - started
                reason = (
                    "timeout"
                    if isinstance(exc, TimeoutError)
                    else f"connection failed ({type(exc).__name__})"
                )
                if attempt >= self.max_tries:
                    raise ApiError(None, path, reason, provider=self.provider) from exc
                await self._retry_sleep(self._backoff(attempt), path, None, attempt)
                continue
            self._stats.last_latency_s = time.perf_counter() - started
            if status < 400:
                return status, resp_headers, body
            retryable = status in RETRY_STATUSES or status >= 500
            if status == 429:
                self._stats.rate_limited += 1
            if not retryable or attempt >= self.max_tries:
                raise ApiError(status, path, status_reason(status, body), provider=self.provider)
            wait = retry_wait(resp_headers, now=self._wall()) if status in RETRY_STATUSES else None
            await self._retry_sleep(self._backoff(attempt) if wait is None else wait, path, status, attempt)

    async def _retry_sleep(self, wait: float, path: str, status: int | None, attempt: int) -> None:
        wait = min(max(0.0, wait), self.max_retry_wait)
        self._stats.retries += 1
        log.info(
            "api_retry",
            provider=self.provider,
            path=path,
            status=status,
            attempt=attempt,
            wait_s=round(wait, 3),
        )
        await self.sleep(wait)


def _path_of(url: str) -> str:
    return urlsplit(url).path or "/"


# Pagination helpers live in ``pages``; re-exported here, the adapter contract's home for them.
from multicloud_collector.providers.pages import (  # noqa: E402
    paginate_continue as paginate_continue,
)
from multicloud_collector.providers.pages import (  # noqa: E402
    paginate_cursor as paginate_cursor,
)
from multicloud_collector.providers.pages import (  # noqa: E402
    paginate_pages as paginate_pages,
)
