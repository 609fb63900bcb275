"""The Debian ``clickhouse-server`` package (18.16) as a throw-away process for protocol-compatibility tests.

Why a real old server: the HTTP sink must read an old server's error framing (``Code: N,
e.displayText() = ...``, no exception-code header, 18.x statuses) and know that settings such as
``insert_deduplication_token`` are unknown there. The server runs as the current user with a
generated minimal config in a temp directory, on free loopback ports; nothing of the system-wide
install (``/etc/clickhouse-server``, the service) is used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CANDIDATES = (
    ("/usr/sbin/clickhouse-server",),
    ("/usr/bin/clickhouse-server",),
    ("/usr/bin/clickhouse", "server"),
)

CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{dir}/log/server.log</log><errorlog>{dir}/log/error.log</errorlog>
        <console>0</console></logger>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password>{password}</password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
"""


def find_binary() -> tuple[str, ...] | None:
    """The command that starts the server, or None when the package is not installed."""
    for cmd in CANDIDATES:
        if Path(cmd[0]).is_file() and os.access(cmd[0], os.X_OK):
            return cmd
    if (found := shutil.which("clickhouse-server")) is not None:
        return (found,)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class OldServer:
    url: str
    password: str
    workdir: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self) -> str:
        parts = []
        for name in ("log/error.log", "stderr.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(parts)


def _wait_ping(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"clickhouse-server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as resp:
                if resp.read().startswith(b"Ok."):
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("clickhouse-server did not answer /ping in time")
        time.sleep(0.05)  # poll interval of a readiness probe, not synchronisation of the test


@contextmanager
def clickhouse18(workdir: Path, password: str = "pw18", timeout: float = 60.0) -> Iterator[OldServer]:
    """Start the old server in ``workdir``; stop it (SIGTERM, then SIGKILL) on exit."""
    cmd = find_binary()
    if cmd is None:
        raise FileNotFoundError("clickhouse-server is not installed")
    for sub in ("log", "data", "tmp", "user_files", "format_schemas"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    http_port, tcp_port = _free_port(), _free_port()
    config = workdir / "config.xml"
    config.write_text(CONFIG.format(dir=workdir, http_port=http_port, tcp_port=tcp_port))
    (workdir / "users.xml").write_text(USERS.format(password=password))
    with open(workdir / "stderr.log", "wb") as err:
        proc = subprocess.Popen(
            [*cmd, f"--config-file={config}"], cwd=workdir, stdout=subprocess.DEVNULL, stderr=err
        )
    server = OldServer(f"http://127.0.0.1:{http_port}", password, workdir, proc)
    try:
        try:
            _wait_ping(server.url, proc, time.monotonic() + timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; log:\n{server.log_tail()}") from None
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
