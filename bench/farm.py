#!/usr/bin/env python3
"""Benchmark target farm: N exporter endpoints on 127.0.0.1 that cost (almost) no CPU to serve.

The collector's benchmark must measure the collector, so the farm may not compete with it for the
two cores of a small machine. Bodies are therefore precomputed: per exporter kind a few *variants*
of the real fixture payload (gauges jittered by a few percent), rebuilt only when the time *step*
advances (counters grow by step, so they stay monotonic for every target). A request is a dict
lookup and one ``transport.write`` on a bare asyncio protocol (no web framework), gzip bodies are
compressed once per step.

Usage::

    python bench/farm.py --targets 1000 --kind mixed [--ports 4] [--port-base 0] [--urls-file F]

Prints ``FARM READY {json}`` once listening (with ``urls`` and ``kinds``, or ``urls_file`` when
``--urls-file`` is given: one URL per line), serves until SIGTERM/SIGINT, then prints
``FARM STOPPED {json}`` with request counts and exits 0. ``GET /-/stats`` on any port answers the
same counts as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import ipaddress
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_FILES = {"node": "node_exporter_1.5.prom", "dcgm": "dcgm_h100_8gpu.prom"}
KINDS = ("node", "dcgm", "mixed")
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
MAX_HEAD_BYTES = 16384
_SAMPLE = re.compile(r"^([^\s{]+)(\{.*\})?\s+(\S+)(\s+\S+)?$")
_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(slots=True)
class Slot:
    """One sample value in a payload: how it moves between variants and steps."""

    mode: str  # const | gauge | counter
    base: float
    is_int: bool
    jitter: tuple[float, ...] = ()  # per variant, in [-1, 1]


@dataclass(slots=True)
class Template:
    """A payload split into static text and value slots: ``segments[0] v0 segments[1] v1 ...``."""

    segments: list[bytes]
    slots: list[Slot]

    def render(self, variant: int, step: int) -> bytes:
        parts: list[bytes] = [self.segments[0]]
        for slot, seg in zip(self.slots, self.segments[1:], strict=True):
            parts.append(_format(_value(slot, variant, step), slot.is_int))
            parts.append(seg)
        return b"".join(parts)


def _value(slot: Slot, variant: int, step: int) -> float:
    if slot.mode == "counter":
        return slot.base + step * max(1.0, slot.base * 1e-4) if slot.base > 0 else 0.0
    if slot.mode == "gauge":
        return slot.base * (1.0 + 0.05 * slot.jitter[variant % len(slot.jitter)])
    return slot.base


def _format(v: float, is_int: bool) -> bytes:
    if is_int:
        return str(round(v)).encode()
    return repr(v).encode()


def _jitter(seed: int, variants: int) -> tuple[float, ...]:
    out = []
    for v in range(variants):
        x = (seed * 2654435761 + v * 40503 + 12345) % 1000003
        out.append(x / 500001.5 - 1.0)
    return tuple(out)


def parse_template(text: str, variants: int) -> Template:
    """Split a fixture into static text and typed value slots (counters grow, gauges jitter)."""
    types: dict[str, str] = {}
    segments: list[bytes] = []
    slots: list[Slot] = []
    pending: list[str] = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            pending.append(line + "\n")
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise ValueError(f"fixture line not understood: {line[:80]!r}")
        name, labels, raw, ts = m.group(1), m.group(2) or "", m.group(3), m.group(4) or ""
        pending.append(f"{name}{labels} ")
        segments.append("".join(pending).encode())
        pending = [f"{ts}\n"]
        value = float(raw)
        slots.append(_slot(name, types, value, len(slots), variants))
    segments.append("".join(pending).encode())
    return Template(segments, slots)


def _slot(name: str, types: dict[str, str], value: float, index: int, variants: int) -> Slot:
    is_int = math.isfinite(value) and value.is_integer() and abs(value) < 2**53
    family = name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            family = name[: -len(suffix)]
    mtype = types.get(family, "untyped")
    if not math.isfinite(value):
        return Slot("const", value, False)
    # untyped node_exporter series (netstat, vmstat) are cumulative counts in practice
    if mtype in ("counter", "untyped") or (mtype in ("histogram", "summary") and family != name):
        return Slot("counter", value, is_int)
    constant = name.endswith("_info") or "time" in name or value in (0.0, 1.0)
    if constant:
        return Slot("const", value, is_int)
    return Slot("gauge", value, is_int, _jitter(index, variants))


@dataclass(slots=True)
class Stats:
    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0


class Farm:
    """The endpoints and their bodies; ``start()`` binds the ports, ``stop()`` closes them."""

    def __init__(
        self,
        targets: int,
        kind: str = "node",
        *,
        ports: int = 4,
        port_base: int = 0,
        variants: int = 4,
        step_seconds: float = 1.0,
        host: str = "127.0.0.1",
        fixtures: Path = FIXTURES,
    ) -> None:
        if targets < 1:
            raise ValueError(f"--targets: must be >= 1, got {targets}")
        if kind not in KINDS:
            raise ValueError(f"--kind: must be one of {KINDS}, got {kind!r}")
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"--host: the farm only listens on loopback, got {host!r}")
        if variants < 1 or step_seconds <= 0:
            raise ValueError("--variants must be >= 1 and --step must be > 0")
        self.host = host
        self.n_ports = max(1, min(ports, targets))
        self.port_base = port_base
        self.variants = variants
        self.step_seconds = step_seconds
        kinds_needed = ("node", "dcgm") if kind == "mixed" else (kind,)
        self.templates = {
            k: parse_template((fixtures / FIXTURE_FILES[k]).read_text(encoding="utf-8"), variants)
            for k in kinds_needed
        }
        self.kinds = [(("node", "dcgm")[i % 2] if kind == "mixed" else kind) for i in range(targets)]
        self.routes: dict[bytes, tuple[str, int]] = {
            f"/{k}/{i}/metrics".encode(): (k, i) for i, k in enumerate(self.kinds)
        }
        self.stats = Stats(by_kind=dict.fromkeys(kinds_needed, 0))
        self.ports: list[int] = []
        self.urls: list[str] = []
        self._servers: list[asyncio.Server] = []
        self._t0 = time.monotonic()
        self._step = -1
        self._bodies: dict[tuple[str, int, bool], bytes] = {}

    async def start(self) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            for p in range(self.n_ports):
                port = self.port_base + p if self.port_base else 0
                server = await loop.create_server(lambda: _Conn(self), self.host, port, reuse_address=True)
                self._servers.append(server)
                self.ports.append(int(server.sockets[0].getsockname()[1]))
        except BaseException:
            await self.stop()
            raise
        self.urls = [
            f"http://{self.host}:{self.ports[i % len(self.ports)]}/{k}/{i}/metrics"
            for i, k in enumerate(self.kinds)
        ]
        return self.urls

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for s in servers:
            s.close()
        for s in servers:
            await s.wait_closed()

    def body(self, kind: str, index: int, gz: bool) -> bytes:
        step = int((time.monotonic() - self._t0) / self.step_seconds)
        if step != self._step:
            self._step = step
            self._bodies.clear()
        variant = (index + step) % self.variants
        key = (kind, variant, gz)
        body = self._bodies.get(key)
        if body is None:
            if gz:
                body = gzip.compress(self.body(kind, index, False), compresslevel=1, mtime=0)
            else:
                body = self.templates[kind].render(variant, step)
            self._bodies[key] = body
        return body

    def respond(self, head: bytes, transport: asyncio.BaseTransport) -> bool:
        """Answer one request; returns whether the connection stays open."""
        assert isinstance(transport, asyncio.WriteTransport)
        request_line, _, header_block = head.partition(b"\r\n")
        parts = request_line.split(b" ")
        if len(parts) != 3:
            _write(transport, b"400 Bad Request", b"text/plain", b"bad request line\n", None, False)
            return False
        method, target, version = parts
        headers: dict[bytes, bytes] = {}
        for line in header_block.split(b"\r\n"):
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip().lower()
        conn = headers.get(b"connection", b"")
        keep = conn != b"close" if version == b"HTTP/1.1" else conn == b"keep-alive"
        if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
            _write(transport, b"405 Method Not Allowed", b"text/plain", b"GET only\n", None, False)
            return False
        if method not in (b"GET", b"HEAD"):
            _write(transport, b"405 Method Not Allowed", b"text/plain", b"GET only\n", None, keep)
            return keep
        path = target.partition(b"?")[0]
        route = self.routes.get(path)
        if route is None:
            if path == b"/-/stats":
                doc = {
                    "requests": self.stats.requests,
                    "by_kind": self.stats.by_kind,
                    "bytes": self.stats.bytes_sent,
                }
                _write(transport, b"200 OK", b"application/json", json.dumps(doc).encode(), None, keep)
            else:
                _write(transport, b"404 Not Found", b"text/plain", b"no such target\n", None, keep)
            return keep
        kind, index = route
        gz = b"gzip" in headers.get(b"accept-encoding", b"")
        body = self.body(kind, index, gz)
        self.stats.requests += 1
        self.stats.by_kind[kind] += 1
        self.stats.bytes_sent += len(body)
        _write(
            transport,
            b"200 OK",
            CONTENT_TYPE,
            body,
            b"gzip" if gz else None,
            keep,
            head_only=method == b"HEAD",
        )
        return keep


def _write(
    transport: asyncio.WriteTransport,
    status: bytes,
    ctype: bytes,
    body: bytes,
    encoding: bytes | None,
    keep: bool,
    *,
    head_only: bool = False,
) -> None:
    lines = [b"HTTP/1.1 " + status, b"Content-Type: " + ctype, b"Content-Length: %d" % len(body)]
    if encoding:
        lines.append(b"Content-Encoding: " + encoding)
    if not keep:
        lines.append(b"Connection: close")
    transport.write(b"\r\n".join(lines) + b"\r\n\r\n")
    if not head_only:
        transport.write(body)


class _Conn(asyncio.Protocol):
    """HTTP/1.1 keep-alive connection: requests are read up to the blank line, bodies refused."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    _write(
                        self.transport,
                        b"431 Request Header Fields Too Large",
                        b"text/plain",
                        b"",
                        None,
                        False,
                    )
                    self.transport.close()
                    buf = b""
                self.buf = buf
                return
            head, buf = buf[:end], buf[end + 4 :]
            if not self.farm.respond(head, self.transport):
                self.transport.close()
                self.buf = b""
                return


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Serve N exporter endpoints on 127.0.0.1 for benchmarks.")
    p.add_argument("--targets", type=int, required=True, help="number of endpoints")
    p.add_argument("--kind", choices=KINDS, default="node", help="payload kind (mixed: even node, odd dcgm)")
    p.add_argument("--ports", type=int, default=4, help="listening ports the targets are spread over")
    p.add_argument("--port-base", type=int, default=0, help="first port (0: ephemeral ports)")
    p.add_argument("--variants", type=int, default=4, help="jittered payload variants per kind")
    p.add_argument("--step", type=float, default=1.0, help="seconds between counter increments")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--urls-file", default=None, help="write the URLs here, one per line")
    return p


async def serve(args: argparse.Namespace) -> int:
    farm = Farm(
        args.targets,
        args.kind,
        ports=args.ports,
        port_base=args.port_base,
        variants=args.variants,
        step_seconds=args.step,
        host=args.host,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    urls = await farm.start()
    ready: dict[str, object] = {"pid": os.getpid(), "ports": farm.ports, "count": len(urls)}
    if args.urls_file:
        path = Path(args.urls_file)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(u + "\n" for u in urls), encoding="utf-8")
        tmp.replace(path)
        ready["urls_file"] = str(path)
    else:
        ready["urls"] = urls
        ready["kinds"] = farm.kinds
    print("FARM READY " + json.dumps(ready, separators=(",", ":")), flush=True)
    try:
        await stop.wait()
    finally:
        await farm.stop()
    done = {"requests": farm.stats.requests, "by_kind": farm.stats.by_kind, "bytes": farm.stats.bytes_sent}
    print("FARM STOPPED " + json.dumps(done, separators=(",", ":")), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(serve(args))
    except (ValueError, OSError) as e:
        print(f"farm: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
