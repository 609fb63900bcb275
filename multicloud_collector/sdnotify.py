"""Minimal systemd notify protocol (``Type=notify`` + ``WatchdogSec=``), without a dependency.

The watchdog ping is sent from the event loop, so a stalled loop stops the pings and systemd
restarts the service: exactly the liveness signal we want.
"""

from __future__ import annotations

import asyncio
import os
import socket

import structlog

log = structlog.get_logger(__name__)


def notify(message: str, env: dict[str, str] | None = None) -> bool:
    """Send one notification; returns False when not running under systemd."""
    e = os.environ if env is None else env
    addr = e.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify_failed", error=str(exc))
        return False
    return True


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Half of WATCHDOG_USEC, as systemd recommends; None when no watchdog is configured."""
    e = os.environ if env is None else env
    usec = e.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = e.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.1)
    except ValueError:
        return None


async def watchdog_loop(stop: asyncio.Event, interval: float) -> None:
    while not stop.is_set():
        notify("WATCHDOG=1")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
