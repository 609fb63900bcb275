"""``mcc run``: wire config, plugins, scheduler, sink and status server into one process.

Shutdown order matters and is the reason this module exists: stop scheduling, let in-flight
scrapes finish (bounded by ``collector.shutdown_grace``), flush every buffered row to the store,
then close the store and the HTTP session. Nothing collected before the signal is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from multicloud_collector import gctune
from multicloud_collector.collect import build_targets
from multicloud_collector.config import Config, ConfigError, load_config
from multicloud_collector.loopmon import LoopLagMonitor
from multicloud_collector.pipeline import ApiRowWriter, OutputWriter
from multicloud_collector.plugins.manager import Registry, await_hook_results, get_plugin_manager
from multicloud_collector.providers.collector import ProviderCollector
from multicloud_collector.runtime import make_batcher, make_session, make_sink
from multicloud_collector.scheduler import Scheduler
from multicloud_collector.sdnotify import notify, watchdog_interval, watchdog_loop
from multicloud_collector.selfmetrics import SelfMetrics
from multicloud_collector.server import StatusServer
from multicloud_collector.sink.base import Sink
from multicloud_collector.store_query import ensure_read_only

log = structlog.get_logger(__name__)

HOOK_TIMEOUT_S = 10.0


class Daemon:
    """One running collector. ``run()`` returns when ``stop`` is set (or a signal arrives)."""

    def __init__(self, config: Config, *, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry or Registry(get_plugin_manager())
        self.metrics = SelfMetrics()
        self.stop = asyncio.Event()
        self.sink: Sink | None = None
        self.server: StatusServer | None = None
        self.scheduler: Scheduler | None = None
        self.providers: ProviderCollector | None = None  # provider API jobs (inventory, billing)
        self._api_stop = asyncio.Event()
        self._api_task: asyncio.Task[None] | None = None
        self._api_writer: ApiRowWriter | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reload_error = ""  # set while the last SIGHUP reload failed (the old config keeps running)

    # -- readiness and query endpoints -------------------------------------------------------
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        state = self.sink.state() if self.sink is not None else "starting"
        info: dict[str, Any] = {"sink": state, "config": "reload_failed" if self._reload_error else "ok"}
        if self._reload_error:
            info["reload_error"] = self._reload_error
        spool = getattr(self.sink, "spool", None)
        if spool is not None:
            st = spool.stats()
            info["spool"] = {
                "batches": st.batches,
                "rows": st.rows,
                "bytes": st.bytes,
                "max_bytes": st.max_bytes,
            }
        # "spooling" is healthy (a backlog drains); "retrying" means the store refuses writes right now.
        # Liveness (/healthz) never depends on the store: data is safe in the spool meanwhile.
        if self.providers is not None:
            # A failing provider API degrades that account only; readiness stays true (metrics go on).
            info["api"] = self.providers.readiness_info()
        ready = self.sink is not None and state in ("writing", "spooling")
        return ready, info

    async def query(self, sql: str, fmt: str) -> bytes:
        ensure_read_only(sql)
        if self.sink is None:
            raise RuntimeError("the store is not open yet")
        return await self.sink.query(sql, fmt)

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(
        self, *, install_signals: bool = True, on_ready: Callable[[Daemon], None] | None = None
    ) -> int:
        cfg = self.config
        pm = self.registry.pm
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_stop_signal, sig)
            loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

        session = make_session(cfg)
        self.sink = make_sink(cfg, self.metrics, session=session)
        spool = getattr(self.sink, "spool", None)
        if spool is not None:
            self.metrics.watch_spool(spool.stats)
        try:
            await self.sink.start()
        except BaseException:
            await session.close()
            raise
        batcher = make_batcher(cfg, self.sink, self.metrics)
        batcher.start()
        lagmon = LoopLagMonitor(self.metrics)
        lag_task = asyncio.create_task(lagmon.run(self.stop), name="loop-lag")
        self.server = StatusServer(
            cfg.collector.listen, self.metrics, readiness=self.readiness, query=self.query
        )
        tasks: list[asyncio.Task[None]] = [lag_task]
        gctune.tune()
        longest = max((a.effective_interval(cfg.collector) for a in cfg.enabled_accounts()), default=15.0)
        tasks.append(
            asyncio.create_task(
                gctune.freeze_periodically(self.stop, first_after=3 * longest, every=600.0), name="gc-freeze"
            )
        )
        try:
            await self.server.start()
            await await_hook_results(pm.hook.startup(config=cfg), timeout=HOOK_TIMEOUT_S)
            targets = build_targets(cfg, self.registry.scrapers, hooks=self.registry)
            self.metrics.set_targets(len(targets))
            self.scheduler = Scheduler(
                targets,
                session,
                self.registry.scrapers,
                OutputWriter(batcher),
                max_concurrency=cfg.collector.max_concurrency,
                observer=self.metrics,
            )
            self._session, self._api_writer = session, ApiRowWriter(batcher)
            self._start_api(cfg)
            log.info(
                "collector_started",
                targets=len(targets),
                accounts=len(cfg.enabled_accounts()),
                listen=f"{self.server.host}:{self.server.port}",
                sink=cfg.sink.kind,
            )
            wd = watchdog_interval()
            if wd:
                tasks.append(asyncio.create_task(watchdog_loop(self.stop, wd), name="watchdog"))
            notify("READY=1")
            if on_ready is not None:
                on_ready(self)
            await self.scheduler.run(self.stop, grace=cfg.collector.shutdown_grace)
        finally:
            notify("STOPPING=1")
            self.stop.set()
            # API jobs end before the batcher closes, so their rows get flushed.
            await self._stop_api(cfg.collector.shutdown_grace)
            log.info("collector_stopping")
            with contextlib.suppress(Exception):
                await await_hook_results(pm.hook.shutdown(config=cfg), timeout=HOOK_TIMEOUT_S)
            await batcher.close(grace=cfg.collector.shutdown_grace)
            await self.server.stop()
            await self.sink.close()
            await session.close()  # after the sink: a ClickHouse sink writes through it
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
            log.info("collector_stopped")
        return 0

    def _start_api(self, cfg: Config) -> None:
        """Provider API jobs for ``cfg``; they get their own stop event so a reload can replace them."""
        assert self._session is not None and self._api_writer is not None
        self._api_stop = asyncio.Event()
        self.providers = ProviderCollector(cfg, self.registry.adapters, self._session, self._api_writer)
        self._api_task = asyncio.create_task(self.providers.run(self._api_stop), name="api-collection")

    async def _stop_api(self, grace: float) -> None:
        self._api_stop.set()
        if self._api_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._api_task, grace)
            self._api_task = None
        if self.providers is not None:
            await self.providers.close()

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        log.info("signal_received", signal=sig.name)
        self.stop.set()

    def _on_reload_signal(self) -> None:
        asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> bool:
        """Re-read the config file; on error keep running with the old one (and say so in /readyz)."""
        path = self.config.source_path
        if path is None or self.scheduler is None:
            return False
        try:
            new = load_config(Path(path), known_kinds=set(self.registry.scrapers))
        except ConfigError as exc:
            self._reload_error = str(exc).splitlines()[0] if str(exc) else "invalid config"
            log.error("config_reload_failed", path=str(path), problems=len(exc.problems), error=str(exc))
            return False
        self._reload_error = ""
        targets = build_targets(new, self.registry.scrapers, hooks=self.registry)
        self.scheduler.update_targets(targets)
        self.metrics.set_targets(len(targets))
        self.metrics.retain_targets({t.id for t in targets})
        if self._api_task is not None:  # API accounts, credentials or intervals may have changed
            await self._stop_api(new.collector.shutdown_grace)
            self._start_api(new)
        self.config = new
        log.info("config_reloaded", path=str(path), targets=len(targets))
        return True


async def run_daemon(config: Config) -> int:
    return await Daemon(config).run()
