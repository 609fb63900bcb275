"""A fake DigitalOcean API v2 (shapes from DigitalOcean's OpenAPI spec and godo).

Droplets are paged with ``page``/``per_page`` and ``links.pages.next`` (a full URL); GPU Droplets
appear only with ``type=gpus``. Errors are ``{"id": "...", "message": "...", "request_id": "..."}``.
Every response carries ``ratelimit-*`` headers; a provoked 429 adds ``retry-after``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from fakes.server import FakeApi

ERROR_IDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    429: "too_many_requests",
    500: "server_error",
}


def size(
    slug: str, vcpus: int, memory: int, hourly: float, monthly: float, gpu: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "slug": slug,
        "memory": memory,
        "vcpus": vcpus,
        "disk": 25,
        "transfer": 1.0,
        "price_monthly": monthly,
        "price_hourly": hourly,
        "regions": ["nyc1", "tor1"],
        "available": True,
        "description": slug,
    }
    if gpu:
        out["gpu_info"] = gpu
    return out


H100X1 = size(
    "gpu-h100x1-80gb",
    20,
    245760,
    3.39,
    2522.16,
    {"count": 1, "model": "nvidia_h100", "vram": {"amount": 80, "unit": "gib"}},
)
H100X8 = size(
    "gpu-h100x8-640gb",
    160,
    1966080,
    23.92,
    17796.48,
    {"count": 8, "model": "nvidia_h100", "vram": {"amount": 640, "unit": "gib"}},
)
BASIC = size("s-1vcpu-1gb", 1, 1024, 0.00893, 6.0)
CPU = size("c-4", 4, 8192, 0.125, 84.0)


def droplet(n: int, sz: dict[str, Any], *, status: str = "active", region: str = "nyc1") -> dict[str, Any]:
    return {
        "id": 3164440 + n,
        "name": f"do-node-{n}",
        "memory": sz["memory"],
        "vcpus": sz["vcpus"],
        "disk": sz["disk"],
        "locked": False,
        "status": status,
        "kernel": None,
        "created_at": f"2024-03-0{n % 9 + 1}T18:37:44Z",
        "features": ["monitoring"],
        "backup_ids": [],
        "snapshot_ids": [],
        "image": {"id": 1, "slug": "ubuntu-22-04-x64"},
        "volume_ids": [],
        "size": sz,
        "size_slug": sz["slug"],
        "networks": {
            "v4": [
                {
                    "ip_address": f"203.0.113.{n}",
                    "netmask": "255.255.240.0",
                    "gateway": "203.0.113.1",
                    "type": "public",
                },
                {
                    "ip_address": f"10.128.0.{n}",
                    "netmask": "255.255.0.0",
                    "gateway": "10.128.0.1",
                    "type": "private",
                },
            ],
            "v6": [],
        },
        "region": {"name": "New York 1", "slug": region, "features": [], "available": True, "sizes": []},
        "tags": ["gpu", "train"] if "gpu_info" in sz else ["web"],
        "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        **({"gpu_info": sz["gpu_info"]} if "gpu_info" in sz else {}),
    }


class DigitalOceanFake(FakeApi):
    def __init__(self, *, token: str = "test-token") -> None:
        self.droplets = [
            droplet(1, BASIC),
            droplet(2, CPU),
            droplet(3, CPU, status="off"),
            droplet(4, BASIC, status="new"),
            droplet(5, BASIC, status="archive"),
        ]
        self.gpu_droplets = [droplet(11, H100X1), droplet(12, H100X8, region="tor1"), droplet(13, H100X1)]
        self.balance = {
            "month_to_date_balance": "23.44",
            "account_balance": "12.23",
            "month_to_date_usage": "11.21",
            "generated_at": "2024-06-10T12:00:00Z",
        }
        self.invoice_items = {
            "22737452-c7ed-4e8e-b3bd-5e3b8ca9b69f": [
                {
                    "product": "Droplets",
                    "resource_id": str(3164440 + 11),
                    "resource_uuid": "711157cb-37c8-4817-b371-44fa3504a39c",
                    "group_description": "",
                    "description": "gpu-h100x1-80gb",
                    "amount": "2522.16",
                    "duration": "744",
                    "duration_unit": "Hours",
                    "start_time": "2024-05-01T00:00:00Z",
                    "end_time": "2024-06-01T00:00:00Z",
                    "project_name": "Training",
                    "category": "iaas",
                },
                {
                    "product": "Droplets",
                    "resource_id": str(3164442),
                    "resource_uuid": "2d5d4c2d-2f4b-4e6c-8d0f-6b9a5a3b1a11",
                    "group_description": "",
                    "description": "c-4",
                    "amount": "84.00",
                    "duration": "744",
                    "duration_unit": "Hours",
                    "start_time": "2024-05-01T00:00:00Z",
                    "end_time": "2024-06-01T00:00:00Z",
                    "project_name": "Web",
                    "category": "iaas",
                },
                {
                    "product": "Spaces",
                    "resource_id": "",
                    "resource_uuid": "",
                    "group_description": "",
                    "description": "Spaces subscription",
                    "amount": "5.00",
                    "duration": "744",
                    "duration_unit": "Hours",
                    "start_time": "2024-05-01T00:00:00Z",
                    "end_time": "2024-06-01T00:00:00Z",
                    "project_name": "",
                    "category": "storage",
                },
            ]
        }
        super().__init__(token=token)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v2/account", self.account)
        router.add_get("/v2/droplets", self.list_droplets)
        router.add_get("/v2/sizes", self.sizes)
        router.add_get("/v2/customers/my/balance", self.get_balance)
        router.add_get("/v2/customers/my/invoices", self.invoices)
        router.add_get("/v2/customers/my/invoices/{uuid}", self.invoice)

    def error_body(self, status: int, message: str) -> Any:
        messages = {401: "Unable to authenticate you.", 429: "API rate limit exceeded."}
        return {
            "id": ERROR_IDS.get(status, "error"),
            "message": messages.get(status, message),
            "request_id": "4d9d8375-3c56-4925-a3e7-eed06e6d6a8d",
        }

    def rate_limit_headers(self) -> dict[str, str]:
        headers = {
            "ratelimit-limit": "5000",
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(int(time.time()) + 3600),
        }
        if self.state.retry_after is not None:
            headers["retry-after"] = f"{self.state.retry_after:g}"
        return headers

    def paged(
        self, request: web.Request, key: str, items: list[Any], extra: dict[str, Any] | None = None
    ) -> web.Response:
        per_page = self.page_size(request, "per_page", 20, 200)
        page = int(request.query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        pages: dict[str, str] = {}
        base = str(request.url.with_query({k: v for k, v in request.query.items() if k != "page"}))
        sep = "&" if "?" in base else "?"
        if page * per_page < len(items):
            pages["next"] = f"{base}{sep}page={page + 1}"
            pages["last"] = f"{base}{sep}page={(len(items) + per_page - 1) // per_page}"
        if page > 1:
            pages["prev"] = f"{base}{sep}page={page - 1}"
            pages["first"] = f"{base}{sep}page=1"
        body = {
            key: chunk,
            "links": {"pages": pages} if pages else {},
            "meta": {"total": len(items)},
            **(extra or {}),
        }
        return web.json_response(
            body,
            headers={
                "ratelimit-limit": "5000",
                "ratelimit-remaining": "4999",
                "ratelimit-reset": str(int(time.time()) + 60),
            },
        )

    async def account(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "account": {
                    "droplet_limit": 25,
                    "email": "ops@example.com",
                    "status": "active",
                    "email_verified": True,
                    "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
                }
            }
        )

    async def list_droplets(self, request: web.Request) -> web.Response:
        if request.query.get("type") == "gpus":
            if "tag_name" in request.query:
                return self.error(422, "type and tag_name cannot be combined")
            return self.paged(request, "droplets", self.gpu_droplets)
        items = self.droplets
        if "tag_name" in request.query:
            items = [d for d in items + self.gpu_droplets if request.query["tag_name"] in d["tags"]]
        return self.paged(request, "droplets", items)

    async def sizes(self, request: web.Request) -> web.Response:
        return self.paged(request, "sizes", [BASIC, CPU, H100X1, H100X8])

    async def get_balance(self, request: web.Request) -> web.Response:
        return web.json_response(self.balance)

    async def invoices(self, request: web.Request) -> web.Response:
        invoices = [
            {
                "invoice_uuid": "22737452-c7ed-4e8e-b3bd-5e3b8ca9b69f",
                "invoice_id": "1001",
                "amount": "2611.16",
                "invoice_period": "2024-05",
                "updated_at": "2024-06-01T08:44:38Z",
            },
            {
                "invoice_uuid": "fe0b3ef5-6d4c-4b6c-8a3e-2d3d2c3d3e3f",
                "invoice_id": "1000",
                "amount": "90.00",
                "invoice_period": "2024-04",
                "updated_at": "2024-05-01T08:44:38Z",
            },
        ]
        preview = {
            "invoice_uuid": "1afe95e6-0958-4eb0-8d9a-9c5060d3ef03",
            "amount": "23.45",
            "invoice_period": "2024-06",
            "updated_at": "2024-06-10T12:00:00Z",
        }
        return self.paged(request, "invoices", invoices, {"invoice_preview": preview})

    async def invoice(self, request: web.Request) -> web.Response:
        items = self.invoice_items.get(request.match_info["uuid"])
        if items is None:
            return self.error(404, "The resource you were accessing could not be found.")
        return self.paged(request, "invoice_items", items)
