"""Run the simulated fleet on its own event loop in a thread, for tests that drive the CLI.

The CLI commands call ``asyncio.run`` themselves, so the fleet cannot share their loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from multicloud_collector.demo.fleet import FleetSimulator


@contextmanager
def fleet_in_thread(**kwargs: object) -> Iterator[FleetSimulator]:
    loop = asyncio.new_event_loop()
    fleet = FleetSimulator(**kwargs)  # type: ignore[arg-type]
    started = threading.Event()
    thread = threading.Thread(target=loop.run_forever, name="fleet", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(fleet.start(), loop).result(timeout=30)
        started.set()
        yield fleet
    finally:
        if started.is_set():
            asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
