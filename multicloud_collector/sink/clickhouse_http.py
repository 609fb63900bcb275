"""The wire to a ClickHouse server: raw HTTP inserts and reads, aiochclient for statements.

Why raw POSTs for inserts: aiochclient hides the HTTP status and the exception code and has no
per-request settings, but the retry policy needs the code and every batch needs its own
``insert_deduplication_token`` (research/clickhouse.md §4-5). Reads with a chosen output format
(``mcc query``) are raw POSTs too. DDL and migrations go through aiochclient on the same shared
session, except when a custom CA or ``verify: false`` is configured: aiochclient cannot pass a
per-request TLS context, so those statements use the raw path as well.

Credentials travel in ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, never in URLs; every
error text is redacted and cut before it reaches a log or an exception.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from multicloud_collector.secrets import Secret, redact, safe_url
from multicloud_collector.sink.base import SinkError
from multicloud_collector.sink.errors import (
    Action,
    Classified,
    classify_code,
    classify_exception,
    classify_response,
    parse_exception_code,
    response_failed,
)

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
FORMAT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
MAX_ERROR_CHARS = 600
_READ_STATEMENT = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I)
# Settings sent only when the server knows them (older servers answer UNKNOWN_SETTING otherwise).
OPTIONAL_SETTINGS = ("async_insert", "insert_deduplication_token")


class InsertError(Exception):
    """An insert failed; ``classified`` says what to do about it."""

    def __init__(self, classified: Classified, message: str) -> None:
        super().__init__(message)
        self.classified = classified

    @property
    def action(self) -> Action:
        return self.classified.action

    @property
    def code_label(self) -> str:
        return str(self.classified.code) if self.classified.code is not None else self.classified.reason


def check_identifier(name: str, what: str) -> str:
    if not IDENT_RE.match(name):
        raise SinkError(f"invalid {what} name {name!r}: use letters, digits and '_'", retryable=False)
    return name


def _error_text(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return redact(text.strip())[:MAX_ERROR_CHARS]


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    settings: frozenset[str]


class ClickHouseHttp:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        database: str,
        user: str = "default",
        password: Secret | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        timeout: float = 30.0,
        gzip_level: int | None = None,
    ) -> None:
        self.session = session
        self.url = url if url.endswith("/") else url + "/"
        self.shown_url = safe_url(self.url)
        self.database = check_identifier(database, "database")
        self.user = user
        self._password = password
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self.gzip_level = gzip_level
        self.ssl: ssl.SSLContext | bool | None = None
        if ca_file is not None:
            self.ssl = ssl.create_default_context(cafile=ca_file)
        if not verify:
            self.ssl = False
        self.server: ServerInfo | None = None
        self._ch: object | None = None

    def headers(self) -> dict[str, str]:
        h = {"X-ClickHouse-User": self.user}
        if self._password:
            h["X-ClickHouse-Key"] = self._password.reveal()
        return h

    # -- inserts ------------------------------------------------------------------------------

    def insert_params(self, table: str, token: str) -> dict[str, str]:
        check_identifier(table, "table")
        if not TOKEN_RE.match(token):
            raise SinkError(f"invalid deduplication token {token[:80]!r}", retryable=False)
        params = {"query": f"INSERT INTO {self.database}.{table} FORMAT JSONEachRow"}
        known = self.server.settings if self.server else frozenset()
        if "async_insert" in known:
            params["async_insert"] = "0"
        if "insert_deduplication_token" in known:
            params["insert_deduplication_token"] = token
        return params

    async def insert(self, table: str, body: bytes, token: str) -> None:
        """One INSERT; raises ``InsertError`` carrying the retry decision."""
        params = self.insert_params(table, token)
        headers = self.headers()
        data = body
        if self.gzip_level is not None:
            data = await asyncio.to_thread(gzip.compress, body, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        try:
            async with self.session.post(
                self.url, params=params, data=data, headers=headers, timeout=self.timeout, ssl=self._ssl()
            ) as resp:
                answer = await resp.read()
                if response_failed(resp.status, resp.headers):
                    c = classify_response(resp.status, resp.headers, answer)
                    raise InsertError(c, f"HTTP {resp.status} from {self.shown_url}: {_error_text(answer)}")
        except InsertError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            c = classify_exception(exc)
            raise InsertError(
                c, f"{type(exc).__name__} talking to {self.shown_url}: {_error_text(str(exc))}"
            ) from None

    def _ssl(self) -> ssl.SSLContext | bool:
        return True if self.ssl is None else self.ssl

    # -- reads and statements -----------------------------------------------------------------

    async def query(self, sql: str, fmt: str = "TabSeparated", *, database: str | None = None) -> bytes:
        """Run one statement and return its raw output in format ``fmt``; raises ``SinkError``."""
        if not FORMAT_RE.match(fmt):
            raise SinkError(f"invalid output format {fmt!r}", retryable=False)
        params = {"default_format": fmt, "database": database or self.database}
        try:
            async with self.session.post(
                self.url,
                params=params,
                data=sql.encode(),
                headers=self.headers(),
                timeout=self.timeout,
                ssl=self._ssl(),
            ) as resp:
                answer = await resp.read()
                if response_failed(resp.status, resp.headers):
                    raise self._sink_error(resp.status, resp.headers, answer)
                return answer
        except SinkError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SinkError(
                f"cannot reach ClickHouse at {self.shown_url}: {type(exc).__name__}: {_error_text(str(exc))}",
                retryable=True,
            ) from None

    def _sink_error(self, status: int, headers: Mapping[str, str], body: bytes) -> SinkError:
        c = classify_response(status, headers, body)
        return SinkError(
            f"ClickHouse at {self.shown_url} answered HTTP {status}: {_error_text(body)}",
            retryable=c.action is Action.RETRY,
            code=c.code,
        )

    async def execute(self, sql: str) -> str:
        """A statement for migrations: reads return their text, DDL goes through aiochclient."""
        if _READ_STATEMENT.match(sql) or self.ssl is not None:
            return (await self.query(sql, "TabSeparated", database="default")).decode("utf-8", "replace")
        client = self._aioch()
        try:
            await client.execute(sql)  # type: ignore[attr-defined]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SinkError(
                f"cannot reach ClickHouse at {self.shown_url}: {type(exc).__name__}", retryable=True
            ) from None
        except Exception as exc:  # aiochclient.ChClientError carries only the server's text
            text = _error_text(str(exc))
            code = parse_exception_code(None, text)
            retry = code is None or classify_code(code).action is Action.RETRY
            raise SinkError(f"ClickHouse at {self.shown_url}: {text}", retryable=retry, code=code) from None
        return ""

    def _aioch(self) -> object:
        if self._ch is None:
            from aiochclient import ChClient

            password = self._password.reveal() if self._password else None
            # database "default": migrations create our database, and every statement names it.
            self._ch = ChClient(
                self.session, url=self.url, user=self.user, password=password, database="default"
            )
        return self._ch

    async def probe(self) -> ServerInfo:
        """Server version and which optional settings it knows; cached until ``forget()``."""
        version = (await self.query("SELECT version()", database="default")).decode().strip()
        names = ", ".join(f"'{s}'" for s in OPTIONAL_SETTINGS)
        known = await self.query(
            f"SELECT name FROM system.settings WHERE name IN ({names})", database="default"
        )
        self.server = ServerInfo(version, frozenset(known.decode().split()))
        return self.server

    def forget(self) -> None:
        self.server = None
