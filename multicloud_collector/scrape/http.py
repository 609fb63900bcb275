"""Bounded HTTP GET for scraping untrusted targets.

A target may be hostile or broken: it can send an endless body, a gzip bomb, trickle one byte a
second or reset the connection half way. ``fetch`` streams the (already decompressed) body and
stops as soon as the byte cap is passed, bounds the whole exchange by one deadline, never follows
redirects, and turns every failure into a ``FetchError`` with a short machine-readable reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

import aiohttp

from multicloud_collector.secrets import redact, safe_url

# What Prometheus 2.x sends; exporters pick OpenMetrics or text 0.0.4 from it.
SCRAPE_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,"
    "*/*;q=0.1"
)
JSON_ACCEPT = "application/json"

# Connect must be shorter than the total deadline so a dead host fails with a clear reason.
CONNECT_TIMEOUT_CAP = 3.0
CHUNK_SIZE = 64 * 1024
ERROR_BODY_BYTES = 4096

REASONS = frozenset({"timeout", "connection", "http_status", "body_limit", "tls", "dns", "protocol"})
TRANSIENT_REASONS = frozenset({"timeout", "connection", "dns"})


class FetchError(Exception):
    """A failed fetch; ``reason`` is one of ``REASONS`` and the message names the target."""

    def __init__(self, reason: str, message: str, *, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.body = body  # first bytes of an error response (APIs put the reason there)

    @property
    def transient(self) -> bool:
        """Worth retrying inside the same interval: network trouble or a 5xx answer."""
        if self.reason in TRANSIENT_REASONS:
            return True
        return self.reason == "http_status" and self.status is not None and self.status >= 500


@dataclass(frozen=True, slots=True)
class FetchResult:
    body: bytes
    content_type: str | None
    status: int
    nbytes: int  # decompressed body size
    duration_s: float


def _status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _classify(exc: BaseException) -> tuple[str, str]:
    """Map an aiohttp/OS exception to (reason, short description)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns", "name resolution failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "tls", "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "tls", "TLS handshake failed"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout", "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection", f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(
            cause, aiohttp.http_exceptions.ContentEncodingError | aiohttp.http_exceptions.DecompressSizeError
        ):
            return "protocol", "invalid compressed body"
        return "connection", "connection closed before the body was complete"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection", "server disconnected"
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return "connection", f"connection error ({type(exc).__name__})"
    if isinstance(exc, aiohttp.InvalidURL):
        return "protocol", "invalid URL"
    return "protocol", f"bad HTTP response ({type(exc).__name__})"


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    timeout: float,  # noqa: ASYNC109 - the deadline is also sent to the target in a header
    max_bytes: int,
    accept: str,
    headers: Mapping[str, str] | None = None,
) -> FetchResult:
    """GET ``url`` with one deadline for the whole exchange and a cap on the decompressed body.

    ``max_bytes`` <= 0 means unlimited. Raises ``FetchError``; never returns a partial body.
    """
    shown = safe_url(url)
    req_headers = {
        "Accept": accept,
        "Accept-Encoding": "gzip",
        "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}",
        "User-Agent": "multicloud-collector",
    }
    if headers:
        req_headers.update(headers)
    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(CONNECT_TIMEOUT_CAP, timeout))
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            async with session.get(
                url, headers=req_headers, timeout=client_timeout, allow_redirects=False
            ) as resp:
                status = resp.status
                if not 200 <= status < 300:
                    raise FetchError(
                        "http_status",
                        f"HTTP {status} {_status_text(status)} from {shown}".replace("  ", " "),
                        status=status,
                        body=await _error_body(resp),
                    )
                body = await _read_capped(resp, max_bytes, shown)
                content_type = resp.headers.get("Content-Type")
    except FetchError:
        raise
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        reason, what = _classify(exc)
        if reason == "timeout":
            what = f"timed out after {timeout:g}s"
        raise FetchError(reason, redact(f"{what} fetching {shown}")) from None
    return FetchResult(
        body=body,
        content_type=content_type,
        status=status,
        nbytes=len(body),
        duration_s=time.monotonic() - started,
    )


async def _error_body(resp: aiohttp.ClientResponse) -> bytes:
    """The start of an error body, for APIs that explain failures there; never the whole thing."""
    try:
        return await resp.content.read(ERROR_BODY_BYTES)
    except (aiohttp.ClientError, OSError):
        return b""


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int, shown: str) -> bytes:
    """Read the decompressed body chunk by chunk, aborting the moment it passes ``max_bytes``."""
    if max_bytes > 0 and not resp.headers.get("Content-Encoding"):
        declared = resp.content_length
        if declared is not None and declared > max_bytes:
            raise FetchError(
                "body_limit", f"body of {declared} bytes exceeds the limit of {max_bytes} bytes from {shown}"
            )
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK_SIZE):
        buf += chunk
        if max_bytes > 0 and len(buf) > max_bytes:
            resp.close()  # drop the connection: the rest of the body is never read
            raise FetchError(
                "body_limit", f"body exceeds the limit of {max_bytes} bytes (decompressed) from {shown}"
            )
    return bytes(buf)
