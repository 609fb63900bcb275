"""A fake Vultr API v2 (shapes from the Vultr OpenAPI spec and govultr): instances, plans, billing.

Cursor pagination as Vultr does it: ``per_page`` + ``cursor``, ``meta.links.next`` ("" at the end).
Errors are ``{"error": "...", "status": N}``. Vultr documents no rate-limit headers, so a provoked
429 carries none unless ``state.retry_after`` is set.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from fakes.server import FakeApi

GPU_PLAN = "vcg-a100-12c-120g-80vram"
H100_PLAN = "vcg-h100-24c-240g-160vram"


def plans() -> list[dict[str, Any]]:
    return [
        {
            "id": "vc2-1c-1gb",
            "vcpu_count": 1,
            "ram": 1024,
            "disk": 25,
            "disk_count": 1,
            "bandwidth": 1024,
            "monthly_cost": 5,
            "type": "vc2",
            "locations": ["ewr", "ams"],
        },
        {
            "id": "vc2-6c-16gb",
            "vcpu_count": 6,
            "ram": 16384,
            "disk": 320,
            "disk_count": 1,
            "bandwidth": 5120,
            "monthly_cost": 80,
            "type": "vc2",
            "locations": ["ewr"],
        },
        {
            "id": GPU_PLAN,
            "vcpu_count": 12,
            "ram": 122880,
            "disk": 1400,
            "disk_count": 1,
            "bandwidth": 10240,
            "monthly_cost": 1750.2,
            "type": "vcg",
            "locations": ["ewr", "sjc"],
            "gpu_vram_gb": 80,
            "gpu_type": "NVIDIA_A100",
        },
        {
            "id": H100_PLAN,
            "vcpu_count": 24,
            "ram": 245760,
            "disk": 2600,
            "disk_count": 1,
            "bandwidth": 10240,
            "monthly_cost": 5110,
            "type": "vcg",
            "locations": ["ewr"],
            "gpu_vram_gb": 160,
            "gpu_type": "NVIDIA_H100",
        },
    ]


def plans_metal() -> list[dict[str, Any]]:
    return [
        {
            "id": "vbm-4c-32gb",
            "cpu_count": 4,
            "ram": 32768,
            "disk": 240,
            "monthly_cost": 120.0,
            "type": "SSD",
            "locations": ["ewr"],
        }
    ]


def instance(
    n: int, plan: str, *, region: str = "ewr", power: str = "running", status: str = "active"
) -> dict[str, Any]:
    p = next(x for x in plans() if x["id"] == plan)
    return {
        "id": f"cb676a46-66fd-4dfb-b839-44314101{n:04d}",
        "os": "Ubuntu 22.04 x64",
        "ram": p["ram"],
        "disk": p["disk"],
        "main_ip": f"192.0.2.{10 + n}",
        "vcpu_count": p["vcpu_count"],
        "region": region,
        "plan": plan,
        "date_created": f"2024-0{1 + n % 9}-10T01:56:20+00:00",
        "status": status,
        "allowed_bandwidth": 1000,
        "netmask_v4": "255.255.254.0",
        "gateway_v4": "192.0.2.1",
        "power_status": power,
        "server_status": "ok",
        "v6_network": "",
        "v6_main_ip": "",
        "v6_network_size": 0,
        "label": f"vultr-node-{n}",
        "internal_ip": "",
        "kvm": "",
        "hostname": f"vultr-node-{n}",
        "os_id": 1743,
        "app_id": 0,
        "image_id": "",
        "firewall_group_id": "",
        "features": [],
        "tags": ["gpu"] if "vcg" in plan else [],
    }


def default_instances() -> list[dict[str, Any]]:
    return [
        instance(1, GPU_PLAN),
        instance(2, GPU_PLAN, region="sjc"),
        instance(3, H100_PLAN),
        instance(4, "vc2-6c-16gb", power="stopped"),
        instance(5, "vc2-1c-1gb", status="pending"),
    ]


class VultrFake(FakeApi):
    public_paths = frozenset({"/v2/plans", "/v2/plans-metal"})

    def __init__(self, *, token: str = "test-token") -> None:
        self.instances: list[dict[str, Any]] = default_instances()
        self.bare_metals: list[dict[str, Any]] = [
            {
                "id": "bm-0001",
                "os": "Ubuntu",
                "ram": "32768 MB",
                "disk": "2x 240GB SSD",
                "main_ip": "198.51.100.7",
                "cpu_count": 4,
                "region": "ewr",
                "date_created": "2023-12-01T00:00:00+00:00",
                "status": "active",
                "plan": "vbm-4c-32gb",
                "label": "metal-1",
                "tags": [],
            }
        ]
        self.account = {
            "name": "Example",
            "email": "ops@example.com",
            "acls": ["manage_users", "billing"],
            "balance": -100.55,
            "pending_charges": 60.25,
            "last_payment_date": "2024-05-01T00:00:00+00:00",
            "last_payment_amount": -1.25,
        }
        self.pending = [
            {
                "description": "192.0.2.11 (122880 MB) [vultr-node-1]",
                "product": "Cloud GPU",
                "start_date": "2024-06-01 00:00:00",
                "end_date": "2024-06-10 00:00:00",
                "units": 216,
                "unit_type": "hours",
                "unit_price": 2.397,
                "total": 517.75,
            },
            {
                "description": "192.0.2.14 (16384 MB) [vultr-node-4]",
                "product": "Cloud Compute",
                "start_date": "2024-06-01T00:00:00+00:00",
                "end_date": "2024-06-10T00:00:00+00:00",
                "units": 216,
                "unit_type": "hours",
                "unit_price": 0.119,
                "total": 25.7,
            },
        ]
        self.invoices = [
            {
                "id": 123456,
                "date": "2024-05-31T23:59:59+00:00",
                "description": "Invoice #123456",
                "amount": 1203.1,
                "balance": 0,
            }
        ]
        self.invoice_items = {
            "123456": [
                {
                    "description": f"line {n}",
                    "product": "Cloud GPU",
                    "start_date": "2024-05-01T00:00:00+00:00",
                    "end_date": "2024-05-31T23:59:59+00:00",
                    "units": 1,
                    "unit_type": "hours",
                    "unit_price": 0.1,
                    "total": t,
                }
                for n, t in enumerate([1000.1, 200.0, 3.0])
            ]
        }
        self.has_pending_route = True
        super().__init__(token=token)
        self.state.retry_after = None

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v2/account", self.get_account)
        router.add_get("/v2/instances", self.list_of("instances", lambda: self.instances))
        router.add_get("/v2/bare-metals", self.list_of("bare_metals", lambda: self.bare_metals))
        router.add_get("/v2/plans", self.list_of("plans", plans))
        router.add_get("/v2/plans-metal", self.list_of("plans_metal", plans_metal))
        router.add_get("/v2/billing/pending-charges", self.pending_charges)
        router.add_get("/v2/billing/invoices", self.list_of("billing_invoices", lambda: self.invoices))
        router.add_get("/v2/billing/invoices/{id}/items", self.items)

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message, "status": status}

    def list_of(self, key: str, source: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return self.page(request, key, source())

        return handler

    def page(self, request: web.Request, key: str, items: list[Any]) -> web.Response:
        size = self.page_size(request, "per_page", 100, 500)
        cursor = request.query.get("cursor")
        start = int(base64.b64decode(cursor).decode().split("=")[1]) if cursor else 0
        chunk = items[start : start + size]
        nxt = (
            base64.b64encode(f"next__={start + size}".encode()).decode() if start + size < len(items) else ""
        )
        prev = base64.b64encode(f"prev__={max(0, start - size)}".encode()).decode() if start else ""
        return web.json_response(
            {key: chunk, "meta": {"total": len(items), "links": {"next": nxt, "prev": prev}}}
        )

    async def get_account(self, request: web.Request) -> web.Response:
        return web.json_response({"account": self.account})

    async def pending_charges(self, request: web.Request) -> web.Response:
        if not self.has_pending_route:  # the route is newer than some API docs: behave like a 404
            return self.error(404, "Not found")
        return web.json_response({"pending_charges": self.pending})

    async def items(self, request: web.Request) -> web.Response:
        found = self.invoice_items.get(request.match_info["id"])
        if found is None:
            return self.error(404, "Invoice not found")
        return self.page(request, "invoice_items", found)
