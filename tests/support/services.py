"""Real services for tests: node_exporter and Prometheus processes, and loopback HTTP servers.

Everything binds 127.0.0.1 on a free port, readiness is awaited by polling with a deadline, and
every process is stopped (terminate, then kill) when its context ends.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from aiohttp import web

NODE_EXPORTER_BIN = "/usr/bin/prometheus-node-exporter"
PROMETHEUS_BIN = "/usr/bin/prometheus"
LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]


def have_binary(path: str) -> bool:
    return os.access(path, os.X_OK) or shutil.which(path) is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def fixture_bytes(name: str) -> bytes:
    """An exporter fixture from the repo's copies under tests/fixtures/exposition."""
    return (REPO / "tests" / "fixtures" / "exposition" / name).read_bytes()


def poll(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05) -> None:
    """Call ``check`` until it returns True; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not ready yet
            last_error = exc
        time.sleep(every)  # poll interval, not synchronization: the loop exits on the condition
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    assert url.startswith(("http://127.0.0.1", "http://localhost")), url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Process:
    """A child process bound to a loopback port; ``stop()`` is idempotent."""

    def __init__(self, args: list[str], port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def _start(
    make_args: Callable[[int], list[str]], ready_path: str, log_path: Path, *, timeout: float = 30.0
) -> Process:
    """Start on a free port and poll ``ready_path``; retry with a new port if the port was taken."""
    last = ""
    for _ in range(3):
        port = free_port()
        proc = Process(make_args(port), port, log_path)

        def ready(p: Process = proc) -> bool:
            if not p.alive():
                raise RuntimeError("process exited")
            return http_get(p.url + ready_path)[0] == 200

        try:
            poll(ready, timeout=timeout, what=f"{make_args(port)[0]} on port {port}")
            return proc
        except (TimeoutError, RuntimeError):
            last = proc.output()
            proc.stop()
    raise RuntimeError(f"could not start {make_args(0)[0]}:\n{last}")


@contextlib.contextmanager
def node_exporter(workdir: Path) -> Iterator[Process]:
    def args(port: int) -> list[str]:
        return [
            NODE_EXPORTER_BIN,
            f"--web.listen-address={LOOPBACK}:{port}",
            # A few cheap collectors keep the test light on a 2-core box.
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.loadavg",
            "--collector.uname",
            "--collector.time",
        ]

    proc = _start(args, "/metrics", workdir / "node_exporter.log")
    try:
        yield proc
    finally:
        proc.stop()


def prometheus_config(jobs: dict[str, str], interval: str = "1s") -> str:
    """A prometheus.yml scraping ``jobs`` (name -> host:port) every ``interval``."""
    lines = [
        "global:",
        f"  scrape_interval: {interval}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
    ]
    for name, hostport in jobs.items():
        lines += [f"  - job_name: {name}", "    static_configs:", f"      - targets: ['{hostport}']"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def prometheus(workdir: Path, jobs: dict[str, str]) -> Iterator[Process]:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "prometheus.yml"
    cfg.write_text(prometheus_config(jobs))

    def args(port: int) -> list[str]:
        return [
            PROMETHEUS_BIN,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--storage.tsdb.retention.time=1h",
        ]

    proc = _start(args, "/-/ready", workdir / "prometheus.log", timeout=60.0)
    try:
        yield proc
    finally:
        proc.stop()


def prometheus_query(base_url: str, query: str) -> dict[str, object]:
    from urllib.parse import urlencode

    _status, body = http_get(f"{base_url}/api/v1/query?{urlencode({'query': query})}")
    data = orjson.loads(body)
    assert isinstance(data, dict), data
    return data


def wait_for_series(base_url: str, query: str, *, timeout: float = 60.0, min_results: int = 1) -> None:
    """Poll Prometheus until ``query`` returns at least ``min_results`` series."""

    def has_data() -> bool:
        data = prometheus_query(base_url, query)
        result = data.get("data", {}).get("result", [])  # type: ignore[union-attr]
        return data.get("status") == "success" and len(result) >= min_results

    poll(has_data, timeout=timeout, what=f"Prometheus data for {query!r}", every=0.2)


class StaticServer:
    """A thread-based HTTP server serving fixed bodies (reachable by external processes)."""

    def __init__(self, routes: dict[str, tuple[bytes, str]]) -> None:
        routes_ = routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                item = routes_.get(self.path.split("?", 1)[0])
                if item is None:
                    self.send_error(404)
                    return
                body, ctype = item
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.hostport = f"{LOOPBACK}:{self.port}"
        self.url = f"http://{self.hostport}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class AppServers:
    """Starts aiohttp apps on 127.0.0.1 free ports in the running loop; ``close()`` stops them all."""

    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []

    async def start(self, app: web.Application) -> str:
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        self._runners.append(runner)
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://{LOOPBACK}:{port}"

    async def close(self) -> None:
        for r in reversed(self._runners):
            await r.cleanup()
        self._runners.clear()
