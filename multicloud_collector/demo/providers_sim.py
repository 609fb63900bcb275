"""Simulated provider APIs for ``mcc demo``: Vultr, Lambda and RunPod answering for the demo fleet.

The real adapters run unchanged against these endpoints (only ``api.base_url`` differs), so the
demo exercises inventory, prices and billing end to end. Every simulated instance carries the
fleet host's name as its hostname, so the ``gpu_cost_hourly`` view links its price to the GPU rows
collected from the same host. Prices are the fleet's list prices (``GpuModel.hourly_usd`` x GPUs).
Each account gets its own path prefix: ``/<provider>/<customer>/...``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import structlog
from aiohttp import web

from multicloud_collector.demo.fleet import FleetSimulator
from multicloud_collector.demo.hosts import SimHost

log = structlog.get_logger(__name__)

DEMO_TOKEN = "demo-api-token"
HOURS_PER_MONTH = 730
SIMULATED: tuple[str, ...] = ("vultr", "lambda", "runpod")
API_PATHS: dict[str, str] = {"vultr": "/v2", "lambda": "/api/v1", "runpod": ""}


def hourly_usd(host: SimHost) -> Decimal:
    return (Decimal(str(host.spec.hourly_usd)) * host.gpus).quantize(Decimal("0.01"))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _plan_id(host: SimHost) -> str:
    return f"vcg-{_slug(host.gpu_model.removeprefix('NVIDIA '))}-x{host.gpus}"


class ProviderApiSimulator:
    """One aiohttp server on 127.0.0.1 serving the simulated APIs for every (provider, customer)."""

    def __init__(self, fleet: FleetSimulator, host: str = "127.0.0.1") -> None:
        self.fleet = fleet
        self.host = host
        self.port = 0
        self.token = DEMO_TOKEN  # the key the simulated APIs accept (tests change it)
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._auth])
        r = self.app.router
        r.add_get("/vultr/{customer}/v2/instances", self.vultr_instances)
        r.add_get("/vultr/{customer}/v2/bare-metals", self.vultr_empty("bare_metals"))
        r.add_get("/vultr/{customer}/v2/plans", self.vultr_plans)
        r.add_get("/vultr/{customer}/v2/plans-metal", self.vultr_empty("plans_metal"))
        r.add_get("/vultr/{customer}/v2/account", self.vultr_account)
        r.add_get("/vultr/{customer}/v2/billing/pending-charges", self.vultr_pending)
        r.add_get("/vultr/{customer}/v2/billing/invoices", self.vultr_empty("billing_invoices"))
        r.add_get("/lambda/{customer}/api/v1/instances", self.lambda_instances)
        r.add_get("/lambda/{customer}/api/v1/instance-types", self.lambda_types)
        r.add_post("/runpod/{customer}/graphql", self.runpod_graphql)
        r.add_get("/runpod/{customer}/rest/v1/billing/pods", self.runpod_billing)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, provider: str, customer: str) -> str:
        return f"{self.url}/{provider}/{customer}{API_PATHS[provider]}"

    def api_config(self, provider: str, customer: str) -> dict[str, Any] | None:
        """The ``api:`` block of a demo account, or None when the provider is not simulated."""
        if provider not in SIMULATED or not self.fleet.hosts_of(provider, customer):
            return None
        api: dict[str, Any] = {
            "api_key": "${MCC_DEMO_API_TOKEN:-" + DEMO_TOKEN + "}",
            "base_url": self.base_url(provider, customer),
            "inventory_interval": "10s",
            "billing_interval": "20s",
            "cache_ttl": "5s",
        }
        if provider == "runpod":
            api["rest_base_url"] = f"{self.url}/runpod/{customer}/rest/v1"
        return api

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("demo_provider_apis_started", port=self.port, providers=list(SIMULATED))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "Invalid API token", "status": 401}, status=401)
        return await handler(request)

    def _hosts(self, request: web.Request, provider: str) -> list[SimHost]:
        return self.fleet.hosts_of(provider, request.match_info["customer"])

    # ---- Vultr ---------------------------------------------------------------------------------

    @staticmethod
    def vultr_empty(key: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response({key: [], "meta": {"total": 0, "links": {"next": "", "prev": ""}}})

        return handler

    async def vultr_instances(self, request: web.Request) -> web.Response:
        items = [
            {
                "id": f"sim-{h.name}",
                "label": h.name,
                "hostname": h.name,
                "plan": _plan_id(h),
                "region": "ewr",
                "status": "active",
                "power_status": "running",
                "vcpu_count": h.cpus,
                "ram": h.memory_bytes // 2**20,
                "main_ip": "",
                "date_created": "2024-01-01T00:00:00+00:00",
                "tags": [h.kind],
            }
            for h in self._hosts(request, "vultr")
        ]
        return web.json_response({"instances": items, "meta": {"total": len(items), "links": {"next": ""}}})

    async def vultr_plans(self, request: web.Request) -> web.Response:
        plans = {
            _plan_id(h): {
                "id": _plan_id(h),
                "vcpu_count": h.cpus,
                "ram": h.memory_bytes // 2**20,
                "type": "vcg",
                "monthly_cost": float(hourly_usd(h) * HOURS_PER_MONTH),
                "locations": ["ewr"],
                "gpu_type": h.gpu_model,
                "gpu_vram_gb": h.spec.memory_mib // 1024,
            }
            for h in self._hosts(request, "vultr")
        }
        return web.json_response({"plans": list(plans.values()), "meta": {"links": {"next": ""}}})

    async def vultr_account(self, request: web.Request) -> web.Response:
        total = sum(hourly_usd(h) for h in self._hosts(request, "vultr")) * 24
        return web.json_response(
            {
                "account": {
                    "name": request.match_info["customer"],
                    "balance": 0,
                    "pending_charges": float(total),
                }
            }
        )

    async def vultr_pending(self, request: web.Request) -> web.Response:
        items = [
            {
                "description": f"{h.name} [{_plan_id(h)}]",
                "product": "Cloud GPU",
                "units": 24,
                "unit_type": "hours",
                "unit_price": float(hourly_usd(h)),
                "total": float(hourly_usd(h) * 24),
            }
            for h in self._hosts(request, "vultr")
        ]
        return web.json_response({"pending_charges": items})

    # ---- Lambda ----------------------------------------------------------------------------------

    def _lambda_type(self, h: SimHost) -> dict[str, Any]:
        return {
            "name": f"gpu_{h.gpus}x_{_slug(h.gpu_model.removeprefix('NVIDIA '))}",
            "description": f"{h.gpus}x {h.gpu_model}",
            "gpu_description": h.gpu_model,
            "price_cents_per_hour": int(hourly_usd(h) * 100),
            "specs": {
                "vcpus": h.cpus,
                "memory_gib": h.memory_bytes // 2**30,
                "storage_gib": 512,
                "gpus": h.gpus,
            },
        }

    async def lambda_instances(self, request: web.Request) -> web.Response:
        items = [
            {
                "id": f"sim-{h.name}",
                "name": h.name,
                "hostname": h.name,
                "ip": "",
                "status": "active",
                "region": {"name": "us-east-1", "description": "Virginia, USA"},
                "instance_type": self._lambda_type(h),
            }
            for h in self._hosts(request, "lambda")
        ]
        return web.json_response({"data": items})

    async def lambda_types(self, request: web.Request) -> web.Response:
        types = {
            t["name"]: {"instance_type": t, "regions_with_capacity_available": []}
            for t in (self._lambda_type(h) for h in self._hosts(request, "lambda"))
        }
        return web.json_response({"data": types})

    # ---- RunPod ----------------------------------------------------------------------------------

    async def runpod_graphql(self, request: web.Request) -> web.Response:
        query = str((await request.json()).get("query", ""))
        hosts = self._hosts(request, "runpod")
        if "pods" in query:
            pods = [
                {
                    "id": h.name,
                    "name": h.name,
                    "desiredStatus": "RUNNING",
                    "costPerHr": float(hourly_usd(h)),
                    "gpuCount": h.gpus,
                    "vcpuCount": h.cpus,
                    "memoryInGb": h.memory_bytes // 2**30,
                    "podType": "RESERVED",
                    "machine": {"gpuDisplayName": h.gpu_model},
                    "runtime": None,
                }
                for h in hosts
            ]
            return web.json_response({"data": {"myself": {"pods": pods}}})
        spend = float(sum((hourly_usd(h) for h in hosts), Decimal(0)))
        return web.json_response(
            {
                "data": {
                    "myself": {
                        "id": "demo",
                        "clientBalance": 500.0,
                        "currentSpendPerHr": spend,
                        "spendLimit": 80,
                    }
                }
            }
        )

    async def runpod_billing(self, request: web.Request) -> web.Response:
        return web.json_response([])
