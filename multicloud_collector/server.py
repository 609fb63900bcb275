"""The daemon's HTTP side door: health, readiness, self-metrics, target status and queries.

``/api/v1/query`` exists because the embedded store can be opened by one process only: while
``mcc run`` holds it, ``mcc query`` sends its SQL here instead. That endpoint runs arbitrary
read queries, which is why the server binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web

from multicloud_collector.model import ScrapeReport, ScrapeStatus
from multicloud_collector.secrets import redact, safe_url
from multicloud_collector.selfmetrics import CONTENT_TYPE, SelfMetrics

log = structlog.get_logger(__name__)

DEFAULT_HOST = "127.0.0.1"
MAX_QUERY_BYTES = 64 * 1024
DEFAULT_QUERY_FORMAT = "JSONEachRow"
_FORMAT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_FORMAT_TYPES = {
    "JSON": "application/json",
    "JSONCompact": "application/json",
    "JSONEachRow": "application/x-ndjson",
    "CSV": "text/csv",
    "CSVWithNames": "text/csv",
    "TSV": "text/tab-separated-values",
    "TabSeparated": "text/tab-separated-values",
    "TSVWithNames": "text/tab-separated-values",
    "TabSeparatedWithNames": "text/tab-separated-values",
    "Pretty": "text/plain; charset=utf-8",
    "PrettyCompact": "text/plain; charset=utf-8",
}

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
QueryFn = Callable[[str, str], Awaitable[bytes]]


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``:port`` or ``port`` → (host, port); host defaults to loopback."""
    text = listen.strip()
    host, sep, port_s = text.rpartition(":")
    if not sep:
        host, port_s = "", text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"collector.listen: expected host:port, got {listen!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"collector.listen: port {port} out of range 0-65535")
    return host, port


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def report_json(r: ScrapeReport) -> dict[str, Any]:
    """One target's last scrape as the JSON API shows it (no secrets: URL and error redacted)."""
    return {
        "target": r.ctx.target,
        "kind": r.ctx.kind,
        "customer": r.ctx.customer,
        "provider": r.ctx.provider,
        "account": r.ctx.account,
        "url": safe_url(r.url) if r.url else "",
        "status": r.status.value,
        "samples": r.samples,
        "duration_ms": round(r.duration_ms, 3),
        "error": redact(r.error),
        "error_reason": r.error_reason,
        "ts": _iso(r.ts_ms),
    }


class StatusServer:
    """aiohttp server for ``/healthz``, ``/readyz``, ``/metrics``, ``/api/v1/*`` and ``/``."""

    def __init__(
        self,
        listen: str,
        metrics: SelfMetrics,
        *,
        readiness: Readiness,
        max_loop_lag: float = 5.0,
        query: QueryFn | None = None,
    ) -> None:
        self.host, self._port = parse_listen(listen)
        self.metrics = metrics
        self.readiness = readiness
        self.max_loop_lag = max_loop_lag
        self.query = query
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one after ``start()`` when 0 was asked for)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_QUERY_BYTES)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_get("/api/v1/targets", self.targets)
        app.router.add_post("/api/v1/query", self.query_handler)
        app.router.add_get("/", self.index)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            msg = f"collector.listen: cannot bind {self.host}:{self._port}: {exc.strerror}"
            raise OSError(exc.errno, msg) from exc
        self._runner = runner
        addresses = runner.addresses
        if addresses:
            self._port = int(addresses[0][1])
        log.info("status_server_started", host=self.host, port=self._port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("status_server_stopped")

    # ---- handlers ----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        lag = self.metrics.loop_lag_max()
        if lag > self.max_loop_lag:
            body = {"status": "unhealthy", "reason": "event_loop_lag", "loop_lag_max_seconds": lag}
            return _json(body, 503)
        return _json({"status": "ok"})

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        try:
            return self.readiness()
        except Exception as exc:
            log.warning("readiness_check_failed", error=f"{type(exc).__name__}: {exc}")
            return False, {"error": redact(f"{type(exc).__name__}: {exc}")}

    async def readyz(self, request: web.Request) -> web.Response:
        ok, detail = self._ready()
        if ok:
            return _json({"status": "ready", **detail})
        return _json({"status": "not_ready", "reason": detail}, 503)

    async def metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def targets(self, request: web.Request) -> web.Response:
        reports = self.metrics.last_reports
        return _json([report_json(reports[t]) for t in sorted(reports)])

    async def query_handler(self, request: web.Request) -> web.Response:
        if self.query is None:
            return _json({"error": "no query endpoint: this process has no store to query"}, 404)
        fmt = request.query.get("format", DEFAULT_QUERY_FORMAT)
        if not _FORMAT_RE.match(fmt):
            return _json({"error": f"format: invalid output format name {fmt[:80]!r}"}, 400)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json({"error": f"query body larger than {MAX_QUERY_BYTES} bytes"}, 413)
        try:
            sql = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            return _json({"error": "query body is not UTF-8 text"}, 400)
        if not sql:
            return _json({"error": "empty query: send the SQL as the request body"}, 400)
        try:
            data = await self.query(sql, fmt)
        except Exception as exc:
            message = redact(str(exc) or type(exc).__name__)
            log.warning("query_failed", error=message, format=fmt)
            return _json({"error": message}, 400)
        ctype = _FORMAT_TYPES.get(fmt, "application/octet-stream")
        return web.Response(body=data, headers={"Content-Type": ctype})

    async def index(self, request: web.Request) -> web.Response:
        ok, detail = self._ready()
        up, down = self.metrics.targets_status()
        rows = "".join(
            f"<tr class={'ok' if r.status is ScrapeStatus.OK else 'err'}><td>{html.escape(r.ctx.target)}</td>"
            f"<td>{html.escape(r.ctx.kind)}</td><td>{r.status.value}</td><td>{r.samples}</td>"
            f"<td>{r.duration_ms:.1f}</td><td>{html.escape(redact(r.error))}</td></tr>"
            for r in sorted(self.metrics.last_reports.values(), key=lambda r: r.ctx.target)
        )
        esc = html.escape
        state = "".join(f"<li>{esc(str(k))}: {esc(redact(str(v)))}</li>" for k, v in detail.items())
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>multicloud-collector</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left}}
.ok td:nth-child(3){{color:green}}.err td:nth-child(3){{color:#b00}}</style></head><body>
<h1>multicloud-collector</h1>
<p>Status: <b>{"ready" if ok else "not ready"}</b> &middot; targets up: <b>{up}</b> &middot;
targets down: <b>{down}</b></p>
<h2>Sink</h2><ul>{state}</ul>
<h2>Targets</h2>
<table><tr><th>target</th><th>kind</th><th>status</th><th>samples</th><th>ms</th><th>error</th></tr>
{rows}</table>
<p><a href="/metrics">/metrics</a> &middot; <a href="/api/v1/targets">/api/v1/targets</a> &middot;
<a href="/readyz">/readyz</a></p>
</body></html>
"""
        return web.Response(
            text=page,
            content_type="text/html",
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )
