"""A ClickHouse HTTP server for tests: the real 26.x engine (chDB) behind ClickHouse's HTTP protocol.

Why: the HTTP sink must be tested against real SQL, real type parsing and real error codes, on any
CI box, without a ClickHouse install. chDB cannot listen itself, so this process speaks the
protocol (``/ping``, query in URL and/or body, ``database``, auth by headers / Basic / params,
settings as URL parameters checked against ``system.settings``, gzip both ways, errors as
``Code: N. DB::Exception: ... (NAME)`` with ``X-ClickHouse-Exception-Code`` and the modern status)
and adds fault injection through ``/__control``. It runs in its own process because chDB holds an
exclusive lock on its data directory and because tests must be able to SIGTERM/SIGKILL it.

Run: ``python tests/support/ch_http_server.py --path DIR --port 0 [--user U --password P]``; it
prints ``LISTENING <port>``. The password may also come from ``CH_TEST_PASSWORD``.

Known differences from a real server: several statements in one request are accepted, GET may
write, there are no sessions / progress headers / KILL / quotas, and one user only. ``rows`` in
``/__control/stats`` counts rows of acknowledged inserts, including ones the engine deduplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import os
import re
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


# --- status mapping (facts from ClickHouse's exceptionCodeToHTTPStatus) -----------------------
def _names(text: str) -> list[str]:
    return text.split()


_STATUS_TEXT = {
    400: """BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE
        CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER
        CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6
        CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN ILLEGAL_COLUMN
        UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST
        UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH
        VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE""",
    401: "REQUIRED_PASSWORD",
    403: "UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED SET_NON_GRANTED_ROLE ACCESS_DENIED",
    404: """UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE UNKNOWN_DATABASE
        UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION UNKNOWN_FORMAT
        UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE""",
    408: "TIMEOUT_EXCEEDED",
    413: "QUERY_IS_TOO_LARGE",
    501: "NOT_IMPLEMENTED",
    503: "SOCKET_TIMEOUT CANNOT_OPEN_FILE CANNOT_SCHEDULE_TASK",
}
STATUS_BY_NAME: dict[str, int] = {n: status for status, text in _STATUS_TEXT.items() for n in _names(text)}

# URL parameters of the HTTP interface that are not settings (accepted; the unsupported ones ignored).
_HTTP_PARAMS = frozenset(
    _names(
        """query database default_format user password query_id session_id session_timeout session_check
        wait_end_of_query buffer_size quota_key stacktrace compress decompress"""
    )
)
_CODE_RE = re.compile(r"Code: (\d+)\.")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$")
_INSERT_RE = re.compile(rb"^\s*INSERT\b", re.I)
_INSERT_FORMAT_RE = re.compile(
    rb"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+([A-Za-z][A-Za-z0-9_]*)[ \t]*(?:\r?\n|$)", re.I | re.S
)
_NOT_DATA_HEAD = re.compile(rb"\b(?:VALUES|SELECT)\b", re.I)


class ChError(Exception):
    """A ClickHouse exception to answer with: code, name and message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code, self.name, self.message = code, name, message

    @classmethod
    def from_engine(cls, exc: BaseException) -> ChError:
        text = str(exc)
        start = text.find("Code: ")
        text = text[start:] if start >= 0 else f"Code: 1001. DB::Exception: {text} (STD_EXCEPTION)"
        code = _CODE_RE.match(text)
        name = _NAME_RE.search(text)
        return cls(int(code.group(1)) if code else 1001, name.group(1) if name else "", text.strip())

    def response(self, status: int | None = None) -> web.Response:
        return web.Response(
            status=status or STATUS_BY_NAME.get(self.name, 500),
            body=(self.message + "\n").encode(),
            headers={
                "X-ClickHouse-Exception-Code": str(self.code),
                "Content-Type": "text/plain; charset=UTF-8",
            },
        )


@dataclass
class Faults:
    fail_code: int = 0
    fail_name: str = ""
    fail_times: int = 0
    fail_status: int | None = None
    drop_times: int = 0
    unhung: asyncio.Event = field(default_factory=asyncio.Event)
    stats: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "requests",
                "queries",
                "inserts",
                "rows",
                "errors",
                "failures_injected",
                "drops_injected",
                "hung",
            ),
            0,
        )
    )

    def reset(self) -> None:
        self.fail_times = self.drop_times = 0
        self.unhung.set()


class Engine:
    """chDB calls, always from a worker thread; one connection per request (streaming inserts lock theirs)."""

    def __init__(self, path: str) -> None:
        import chdb  # imported here: the ChServer controller side must not pay for (or lock) chDB

        self._chdb = chdb
        self.path = path
        self.anchor = chdb.connect(path)  # keeps the embedded server (and the dir lock) up between requests
        names = self.anchor.query("SELECT name FROM system.settings", "TabSeparated").bytes().decode()
        self.settings = frozenset(names.split())

    def code_name(self, code: int) -> str:
        conn = self._chdb.connect(self.path)
        try:
            return str(
                conn.query(f"SELECT errorCodeToName({int(code)})", "TabSeparated").bytes().decode().strip()
            )
        finally:
            conn.close()

    def _open(self, settings: dict[str, str], database: str | None) -> Any:
        conn = self._chdb.connect(self.path)
        try:
            for key, value in settings.items():
                escaped = value.replace("\\", "\\\\").replace("'", "\\'")
                conn.query(f"SET {key} = '{escaped}'")
            if database:
                conn.query(f"USE `{database.replace('`', '')}`")
        except BaseException:
            conn.close()
            raise
        return conn

    def insert(self, settings: dict[str, str], database: str | None, head: str, fmt: str, data: bytes) -> int:
        conn = self._open(settings, database)
        try:
            inserter = conn.send_insert(head, fmt)
            try:
                inserter.append(data)
            except BaseException:
                inserter.cancel()
                raise
            return int(inserter.finish().rows_written)
        finally:
            conn.close()

    def query(
        self, settings: dict[str, str], database: str | None, sql: str, fmt: str, params: dict[str, str]
    ) -> tuple[bytes, int]:
        conn = self._open(settings, database)
        try:
            res = conn.query(sql, fmt, params=params or None)
            written = res.rows_written() if callable(res.rows_written) else res.rows_written
            return bytes(res.bytes() or b""), int(written or 0)
        finally:
            conn.close()


class Handler:
    def __init__(self, engine: Engine, user: str, password: str) -> None:
        self.engine, self.user, self.password = engine, user, password
        self.faults = Faults()
        self.faults.unhung.set()
        self.stopping = False

    def _credentials(self, request: web.Request) -> tuple[str, str]:
        h, q = request.headers, request.query
        if "X-ClickHouse-User" in h or "X-ClickHouse-Key" in h:
            return h.get("X-ClickHouse-User", "default"), h.get("X-ClickHouse-Key", "")
        auth = h.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user, password
        return q.get("user", "default"), q.get("password", "")

    async def control(self, request: web.Request) -> web.Response:
        f = self.faults
        if request.method == "GET":
            return web.json_response(f.stats)
        cmd = await request.json()
        if cmd.get("reset"):
            f.reset()
            for key in f.stats:
                f.stats[key] = 0
        if "fail" in cmd:
            spec = cmd["fail"]
            f.fail_code, f.fail_times, f.fail_status = (
                int(spec["code"]),
                int(spec.get("times", 1)),
                spec.get("status"),
            )
            f.fail_name = await asyncio.to_thread(self.engine.code_name, f.fail_code)
        if "hang" in cmd:
            (f.unhung.clear if cmd["hang"] else f.unhung.set)()
        if "drop_after_commit" in cmd:
            f.drop_times = int(cmd["drop_after_commit"])
        return web.json_response({"ok": True})

    async def ping(self, request: web.Request) -> web.StreamResponse:
        await self._wait_unhung(request)
        return web.Response(text="Ok.\n")

    async def _wait_unhung(self, request: web.Request) -> None:
        if not self.faults.unhung.is_set():
            self.faults.stats["hung"] += 1
            await self.faults.unhung.wait()  # the handler is cancelled when the client gives up
        if self.stopping or request.transport is None or request.transport.is_closing():
            raise asyncio.CancelledError  # client already gone (or we are shutting down): do nothing

    async def query(self, request: web.Request) -> web.StreamResponse:
        stats = self.faults.stats
        stats["requests"] += 1
        await self._wait_unhung(request)
        try:
            response = await self._execute(request)
        except ChError as err:
            stats["errors"] += 1
            return err.response()
        if response is None:  # answer lost on purpose
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return response

    async def _execute(self, request: web.Request) -> web.StreamResponse | None:
        user, password = self._credentials(request)
        if (user, password) != (self.user, self.password):
            raise ChError(
                516,
                "AUTHENTICATION_FAILED",
                f"Code: 516. DB::Exception: {user}: Authentication "
                "failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
            )
        params: dict[str, str] = {}
        settings: dict[str, str] = {}
        for key, value in request.query.items():
            if key.startswith("param_"):
                params[key[6:]] = value
            elif key not in _HTTP_PARAMS:
                if key not in self.engine.settings:
                    raise ChError(
                        115,
                        "UNKNOWN_SETTING",
                        f"Code: 115. DB::Exception: Unknown setting '{key}'. (UNKNOWN_SETTING)",
                    )
                settings[key] = value
        url_query = request.query.get("query", "").encode()
        body = await request.read() if request.can_read_body else b""
        text = url_query + b"\n" + body if url_query and body else url_query or body
        if not text.strip():
            raise ChError(62, "SYNTAX_ERROR", "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
        database = request.query.get("database") or None
        if _INSERT_RE.match(text):
            rows = await self._insert(settings, database, text)
            if rows is None:
                return None
            payload = b""
        else:
            fmt = request.query.get("default_format", "TabSeparated")
            self.faults.stats["queries"] += 1
            try:
                payload, _ = await asyncio.to_thread(
                    self.engine.query, settings, database, text.decode(errors="replace"), fmt, params
                )
            except Exception as exc:
                raise ChError.from_engine(exc) from None
        return self._respond(request, payload, settings)

    async def _insert(self, settings: dict[str, str], database: str | None, text: bytes) -> int | None:
        f = self.faults
        if f.fail_times > 0:
            f.fail_times -= 1
            f.stats["failures_injected"] += 1
            err = ChError(
                f.fail_code,
                f.fail_name,
                f"Code: {f.fail_code}. DB::Exception: injected by the test "
                f"server ({f.fail_name}). ({f.fail_name})",
            )
            raise _Answer(err.response(f.fail_status))
        m = _INSERT_FORMAT_RE.match(text)
        try:
            if m and not _NOT_DATA_HEAD.search(m.group(1)):
                head, fmt, data = m.group(1).decode(), m.group(2).decode(), text[m.end() :]
                rows = await asyncio.to_thread(self.engine.insert, settings, database, head, fmt, data)
            else:
                _, rows = await asyncio.to_thread(
                    self.engine.query, settings, database, text.decode(errors="replace"), "TabSeparated", {}
                )
        except Exception as exc:
            raise ChError.from_engine(exc) from None
        f.stats["inserts"] += 1
        f.stats["rows"] += rows
        if f.drop_times > 0:
            f.drop_times -= 1
            f.stats["drops_injected"] += 1
            return None
        return rows

    @staticmethod
    def _respond(request: web.Request, payload: bytes, settings: dict[str, str]) -> web.Response:
        headers = {"Content-Type": "text/plain; charset=UTF-8"}
        if settings.get("enable_http_compression") in ("1", "true") and "gzip" in request.headers.get(
            "Accept-Encoding", ""
        ):
            payload = gzip.compress(payload, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=payload, headers=headers)


class _Answer(Exception):
    """Short-cuts a request with a ready response (injected failures)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__("injected")
        self.response = response


@web.middleware
async def _answer_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except _Answer as answer:
        return answer.response


async def serve(path: str, port: int, user: str, password: str) -> None:
    engine = await asyncio.to_thread(Engine, path)
    handler = Handler(engine, user, password)
    app = web.Application(middlewares=[_answer_middleware], client_max_size=1 << 30)
    app.router.add_get("/ping", handler.ping)
    app.router.add_route("*", "/__control", handler.control)
    app.router.add_get("/__control/stats", handler.control)
    app.router.add_route("GET", "/", handler.query)
    app.router.add_route("POST", "/", handler.query)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, shutdown_timeout=0.5, reuse_address=True)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    print(f"LISTENING {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    handler.stopping = True
    handler.faults.unhung.set()
    await runner.cleanup()
    engine.anchor.close()


# --- controller used by tests ------------------------------------------------------------------


class ChQueryError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body.strip()}")
        self.status, self.body = status, body


class ChServer:
    """Start/stop/kill the server process and drive its faults; ``stop()`` + ``start()`` keep path, port."""

    def __init__(self, path: Path, *, user: str = "default", password: str = "", port: int = 0) -> None:
        self.path, self.user, self.password, self.port = Path(path), user, password, port
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.path.parent / f"{self.path.name}.server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ChServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("ChServer already running")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--path",
            str(self.path),
            "--port",
            str(self.port),
            "--user",
            self.user,
        ]
        env = {**os.environ, "CH_TEST_PASSWORD": self.password}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline().decode() if ready else ""
        if not line.startswith("LISTENING "):
            self.kill()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ch_http_server did not start (got {line!r}); log:\n{tail}")
        self.port = int(line.split()[1])

    def _wait(self, timeout: float) -> None:
        assert self._proc is not None
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
            self._wait(30)

    def kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _control(self, cmd: dict[str, Any]) -> None:
        req = urllib.request.Request(
            f"{self.url}/__control",
            data=json.dumps(cmd).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def fail_inserts(self, code: int, times: int = 1, status: int | None = None) -> None:
        self._control({"fail": {"code": code, "times": times, "status": status}})

    def hang(self, on: bool = True) -> None:
        self._control({"hang": on})

    def drop_after_commit(self, times: int = 1) -> None:
        self._control({"drop_after_commit": times})

    def reset(self) -> None:
        self._control({"reset": True})

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/__control/stats", timeout=30) as resp:
            data: dict[str, int] = json.loads(resp.read())
        return data

    def query(self, sql: str) -> str:
        """Run ``sql`` over HTTP (TSV output); raises ``ChQueryError`` on an error answer."""
        auth = {"X-ClickHouse-User": self.user, "X-ClickHouse-Key": self.password}
        req = urllib.request.Request(f"{self.url}/", data=sql.encode(), method="POST", headers=auth)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return str(resp.read().decode())
        except urllib.error.HTTPError as err:
            raise ChQueryError(err.code, err.read().decode(errors="replace")) from None


def ch_server(tmp_path_factory: Any, **kwargs: Any) -> Iterator[ChServer]:
    """Generator for a pytest fixture: ``yield from ch_server(tmp_path_factory)``."""
    server = ChServer(tmp_path_factory.mktemp("chhttp") / "db", **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--path", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", default="default")
    ap.add_argument("--password", default=None)
    args = ap.parse_args(argv)
    password = args.password if args.password is not None else os.environ.get("CH_TEST_PASSWORD", "")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.path, args.port, args.user, password))


if __name__ == "__main__":
    main()
