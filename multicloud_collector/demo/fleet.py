"""``FleetSimulator``: one aiohttp server on 127.0.0.1 that plays a whole multi-cloud GPU fleet.

Each simulated host has a dcgm-exporter and a node_exporter endpoint, and each provider a
Prometheus-compatible query API, all as paths of one port so the demo needs no port juggling.
Payloads are rendered once per (host, exporter, second) and reused, so the simulator can answer
many scrapes per second on a small machine without competing with the collector for CPU.
"""

from __future__ import annotations

import gzip
import ipaddress
import time
from collections.abc import Callable, Iterable, Sequence

import orjson
import structlog
from aiohttp import web

from multicloud_collector.demo.hosts import PROVIDER_NAMES, SimHost, build_fleet
from multicloud_collector.demo.node_payload import node_families
from multicloud_collector.demo.payloads import dcgm_families, render_dcgm, render_node
from multicloud_collector.demo.promql_api import PromSample, make_query_handler
from multicloud_collector.demo.textfmt import Family

log = structlog.get_logger(__name__)

EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DCGM_PORT = 9400  # what the simulated Prometheus puts in its ``instance`` label
NODE_PORT = 9100
_RENDER: dict[str, Callable[[SimHost, float], str]] = {"dcgm": render_dcgm, "node": render_node}


class FleetSimulator:
    """A simulated fleet served over HTTP; ``start()`` binds, ``stop()`` releases everything."""

    def __init__(
        self,
        seed: int = 0,
        hosts_per_provider: int = 5,
        providers: Sequence[str] | None = None,
        customers: Sequence[str] = ("acme", "globex"),
        *,
        listen_host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not ipaddress.ip_address(listen_host).is_loopback:
            raise ValueError(f"listen_host: the simulator only listens on loopback, got {listen_host!r}")
        self.seed = seed
        self.clock = clock
        self.hosts: list[SimHost] = build_fleet(
            seed=seed,
            epoch=clock(),
            hosts_per_provider=hosts_per_provider,
            providers=tuple(providers) if providers is not None else PROVIDER_NAMES,
            customers=tuple(customers),
        )
        self.providers: list[str] = list(dict.fromkeys(h.provider for h in self.hosts))
        self.customers: list[str] = list(dict.fromkeys(h.customer for h in self.hosts))
        self._by_name = {h.name: h for h in self.hosts}
        self._listen_host = listen_host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._cache_second = -1
        self._cache: dict[tuple[str, str, bool], bytes] = {}
        self._down: set[tuple[str, str]] = set()
        self.port = 0
        self.requests = 0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FleetSimulator already started")
        app = web.Application()
        query = make_query_handler(self._prom_samples, self.clock)
        app.router.add_get("/", self._index)
        app.router.add_get("/hosts/{host}/{kind}/metrics", self._metrics)
        for path in ("/prom/{provider}/api/v1/query", "/prom/{provider}/{customer}/api/v1/query"):
            app.router.add_get(path, query)
            app.router.add_post(path, query)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._listen_host, self._requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("demo_fleet_started", port=self.port, hosts=len(self.hosts), providers=self.providers)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            log.info("demo_fleet_stopped", requests=self.requests)

    async def __aenter__(self) -> FleetSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("FleetSimulator not started: call await start() first")
        return f"http://{self._listen_host}:{self.port}"

    def host(self, name: str) -> SimHost:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"host: no simulated host named {name!r}") from None

    def dcgm_url(self, host: SimHost | str) -> str:
        return f"{self.base_url}/hosts/{self._name(host)}/dcgm/metrics"

    def node_url(self, host: SimHost | str) -> str:
        return f"{self.base_url}/hosts/{self._name(host)}/node/metrics"

    def prometheus_url(self, provider: str, customer: str | None = None) -> str:
        """Base URL of the provider's query API (append ``/api/v1/query``); per customer if given."""
        if provider not in self.providers:
            raise KeyError(f"provider: {provider!r} is not simulated (have {self.providers})")
        base = f"{self.base_url}/prom/{provider}"
        return base if customer is None else f"{base}/{customer}"

    def hosts_of(self, provider: str, customer: str | None = None) -> list[SimHost]:
        return [
            h for h in self.hosts if h.provider == provider and (customer is None or h.customer == customer)
        ]

    def set_down(self, host: SimHost | str, kind: str, down: bool = True) -> None:
        """Make one exporter answer 503 (or recover), to show failing targets in the demo."""
        key = (self._name(host), kind)
        if down:
            self._down.add(key)
        else:
            self._down.discard(key)

    def _name(self, host: SimHost | str) -> str:
        name = host.name if isinstance(host, SimHost) else host
        self.host(name)
        return name

    # -- handlers ------------------------------------------------------------------------------
    def payload(self, host: SimHost, kind: str, gzipped: bool) -> bytes:
        """The exporter body for the current second, rendered at most once per second."""
        second = int(self.clock())
        if second != self._cache_second:
            self._cache.clear()
            self._cache_second = second
        key = (host.name, kind, gzipped)
        body = self._cache.get(key)
        if body is None:
            if gzipped:
                body = gzip.compress(self.payload(host, kind, False), compresslevel=1, mtime=0)
            else:
                body = _RENDER[kind](host, float(second)).encode()
            self._cache[key] = body
        return body

    async def _metrics(self, request: web.Request) -> web.Response:
        self.requests += 1
        name, kind = request.match_info["host"], request.match_info["kind"]
        host = self._by_name.get(name)
        if host is None or kind not in _RENDER:
            return web.Response(status=404, text=f"no simulated {kind} exporter on host {name!r}\n")
        if (name, kind) in self._down:
            return web.Response(status=503, text="exporter unavailable (simulated outage)\n")
        gz = "gzip" in request.headers.get("Accept-Encoding", "")
        headers = {"Content-Type": EXPOSITION_CONTENT_TYPE}
        if gz:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=self.payload(host, kind, gz), headers=headers)

    async def _index(self, request: web.Request) -> web.Response:
        doc = {
            "hosts": [
                {
                    "name": h.name,
                    "provider": h.provider,
                    "customer": h.customer,
                    "gpus": h.gpus,
                    "gpu_model": h.gpu_model,
                    "kind": h.kind,
                    "mig": h.mig,
                    "dcgm_url": self.dcgm_url(h),
                    "node_url": self.node_url(h),
                }
                for h in self.hosts
            ],
            "prometheus": {p: self.prometheus_url(p) for p in self.providers},
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    def _prom_samples(
        self, provider: str, customer: str | None, t: float, metric: str | None
    ) -> Iterable[PromSample] | None:
        if provider not in self.providers or (customer is not None and customer not in self.customers):
            return None
        want_dcgm = metric is None or metric.startswith("DCGM_")
        want_node = metric is None or not metric.startswith("DCGM_")
        out: list[PromSample] = []
        for h in self.hosts_of(provider, customer):
            if want_dcgm:
                out.extend(_prom_view(dcgm_families(h, t), h, "dcgm-exporter", DCGM_PORT, metric))
            if want_node:
                out.extend(_prom_view(node_families(h, t), h, "node-exporter", NODE_PORT, metric))
        return out


def _prom_view(
    families: list[Family], host: SimHost, job: str, port: int, metric: str | None
) -> list[PromSample]:
    """Samples as a Prometheus scraping ``host`` would store them (``instance``/``job`` added)."""
    target = {"instance": f"{host.name}:{port}", "job": job}
    out: list[PromSample] = []
    for fam in families:
        if metric is not None and fam.name != metric:
            continue
        for labels, value in fam.samples:
            out.append(({"__name__": fam.name, **dict(labels), **target}, value))
    return out
