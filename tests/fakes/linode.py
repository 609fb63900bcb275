"""A fake of the Linode (Akamai Cloud) API v4 for adapter tests.

Shapes follow the Linode OpenAPI spec (v4.189.0) as summarised in research/providers.md:
``{"data": [...], "page", "pages", "results"}`` envelopes with ``page``/``page_size`` paging,
``{"errors": [{"reason": ...}]}`` error bodies, and 429 with ``X-RateLimit-*`` + ``Retry-After``.
Knobs live on ``LinodeState`` (the app's ``state``): a test sets e.g. ``state.rate_limit_next = 1``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "linode-test-token-0123456789"
MIN_PAGE_SIZE, MAX_PAGE_SIZE = 25, 500


def _gpu_type(
    type_id: str, label: str, gpus: int, vcpus: int, memory: int, hourly: float, monthly: float
) -> dict[str, Any]:
    return {
        "id": type_id,
        "label": label,
        "class": "gpu",
        "disk": 655360,
        "memory": memory,
        "vcpus": vcpus,
        "gpus": gpus,
        "transfer": 16000,
        "network_out": 10000,
        "price": {"hourly": hourly, "monthly": monthly},
        "region_prices": [],
        "addons": {"backups": {"price": {"hourly": 0.16, "monthly": 100.0}, "region_prices": []}},
        "successor": None,
        "accelerated_devices": 0,
    }


def default_types() -> list[dict[str, Any]]:
    standard = {
        "id": "g6-standard-2",
        "label": "Linode 4GB",
        "class": "standard",
        "disk": 81920,
        "memory": 4096,
        "vcpus": 2,
        "gpus": 0,
        "transfer": 4000,
        "network_out": 4000,
        "price": {"hourly": 0.036, "monthly": 24.0},
        "region_prices": [
            {"id": "id-cgk", "hourly": 0.043, "monthly": 28.8},
            {"id": "br-gru", "hourly": 0.05, "monthly": 33.6},
        ],
        "addons": {"backups": {"price": {"hourly": 0.008, "monthly": 5.0}, "region_prices": []}},
        "successor": None,
        "accelerated_devices": 0,
    }
    return [
        standard,
        _gpu_type("g1-gpu-rtx6000-1", "Dedicated 32GB + RTX6000 GPU x1", 1, 8, 32768, 1.5, 1000.0),
        _gpu_type("g1-gpu-rtx6000-2", "Dedicated 64GB + RTX6000 GPU x2", 2, 16, 65536, 3.0, 2000.0),
    ]


def _instance(
    iid: int, label: str, region: str, type_id: str, status: str, specs: dict[str, int], ip: str, created: str
) -> dict[str, Any]:
    return {
        "id": iid,
        "label": label,
        "region": region,
        "type": type_id,
        "status": status,
        "image": "linode/ubuntu22.04",
        "group": "",
        "tags": ["ml", "team-a"] if specs.get("gpus") else ["web"],
        "ipv4": [ip, "192.168.128.10"],
        "ipv6": "2600:3c03::f03c:91ff:fe24:3a2f/128",
        "hypervisor": "kvm",
        "lke_cluster_id": None,
        "created": created,
        "updated": created,
        "specs": {"disk": 81920, "transfer": 4000, **specs},
        "watchdog_enabled": True,
    }


def default_instances() -> list[dict[str, Any]]:
    out = [
        _instance(
            1001,
            "gpu-train-1",
            "us-east",
            "g1-gpu-rtx6000-2",
            "running",
            {"memory": 65536, "vcpus": 16, "gpus": 2},
            "198.51.100.11",
            "2024-09-01T08:00:00",
        ),
        _instance(
            1002,
            "gpu-infer-1",
            "us-east",
            "g1-gpu-rtx6000-1",
            "offline",
            {"memory": 32768, "vcpus": 8, "gpus": 1},
            "198.51.100.12",
            "2024-09-02T09:30:00",
        ),
        _instance(
            1003,
            "web-jakarta",
            "id-cgk",
            "g6-standard-2",
            "booting",
            {"memory": 4096, "vcpus": 2, "gpus": 0},
            "198.51.100.13",
            "2024-09-03T10:00:00",
        ),
    ]
    for n in range(4, 31):  # enough for two pages at the minimum page_size of 25
        out.append(
            _instance(
                1000 + n,
                f"web-{n}",
                "us-east",
                "g6-standard-2",
                "running",
                {"memory": 4096, "vcpus": 2, "gpus": 0},
                f"198.51.100.{n + 10}",
                "2024-08-01T00:00:00",
            )
        )
    return out


def default_invoices() -> list[dict[str, Any]]:
    return [
        {
            "id": 9001,
            "date": "2024-10-01T00:00:00",
            "label": "Invoice",
            "subtotal": 1082.0,
            "tax": 0.0,
            "total": 1082.0,
            "billing_source": "linode",
            "tax_summary": [],
        },
        {
            "id": 9000,
            "date": "2024-09-01T00:00:00",
            "label": "Invoice",
            "subtotal": 24.012,
            "tax": 1.92,
            "total": 25.932,
            "billing_source": "linode",
            "tax_summary": [{"name": "VAT", "tax": 1.92}],
        },
    ]


def default_invoice_items() -> dict[int, list[dict[str, Any]]]:
    return {
        9001: [
            {
                "label": "Dedicated 64GB + RTX6000 GPU x2 - gpu-train-1",
                "type": "hourly",
                "unit_price": "3.00",
                "quantity": 360,
                "amount": 1080.0,
                "tax": 0.0,
                "total": 1080.0,
                "region": "us-east",
                "from": "2024-09-01T00:00:00",
                "to": "2024-09-15T23:59:59",
            },
            {
                "label": "Linode 4GB - web-jakarta",
                "type": "hourly",
                "unit_price": "0.043",
                "quantity": 46,
                "amount": 1.978,
                "tax": 0.0,
                "total": 1.978,
                "region": "id-cgk",
                "from": "2024-09-28T00:00:00",
                "to": "2024-09-30T23:59:59",
            },
            {
                "label": "Object Storage",
                "type": "misc",
                "unit_price": "0.022",
                "quantity": 1,
                "amount": 0.022,
                "tax": 0.0,
                "total": 0.022,
                "region": None,
                "from": "2024-09-01T00:00:00",
                "to": "2024-09-30T23:59:59",
            },
        ],
        9000: [
            {
                "label": "Linode 4GB - web-4",
                "type": "hourly",
                "unit_price": "0.036",
                "quantity": 666,
                "amount": 23.976,
                "tax": 1.92,
                "total": 25.896,
                "region": "us-east",
                "from": "2024-08-01T00:00:00",
                "to": "2024-08-28T18:00:00",
            },
            {
                "label": "Linode 4GB - web-5",
                "type": "hourly",
                "unit_price": "0.036",
                "quantity": 1,
                "amount": 0.036,
                "tax": 0.0,
                "total": 0.036,
                "region": "us-east",
                "from": "2024-08-31T23:00:00",
                "to": "2024-08-31T23:59:59",
            },
        ],
    }


@dataclass
class LinodeState:
    """Data served and knobs a test sets; ``requests`` logs (method, path, query) of every call."""

    token: str = TOKEN
    instances: list[dict[str, Any]] = field(default_factory=default_instances)
    types: list[dict[str, Any]] = field(default_factory=default_types)
    invoices: list[dict[str, Any]] = field(default_factory=default_invoices)
    invoice_items: dict[int, list[dict[str, Any]]] = field(default_factory=default_invoice_items)
    account: dict[str, Any] = field(
        default_factory=lambda: {
            "company": "Example ML Ltd",
            "email": "ops@example.com",
            "euuid": "E1AF5EEC-526F-487D-B317EBEB34C87D71",
            "balance": 12.5,
            "balance_uninvoiced": 145.35,
            "active_since": "2018-01-01T00:01:01",
            "billing_source": "linode",
            "capabilities": ["Linodes", "Object Storage"],
            "active_promotions": [
                {"credit_remaining": "50.00", "summary": "$50 off", "expire_dt": "2025-01-01T00:00:00"}
            ],
        }
    )
    rate_limit_next: int = 0  # answer the next N requests with 429
    retry_after: int = 3  # seconds in Retry-After of those 429s
    fail_next: list[int] = field(default_factory=list)  # statuses (e.g. 503, 404) for the next requests
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


STATE_KEY = web.AppKey("linode_state", LinodeState)


def _errors(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errors": [{"reason": reason}]}, status=status, headers=headers)


def _paged(request: web.Request, items: list[dict[str, Any]]) -> web.Response:
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("page_size", "100"))
    except ValueError:
        return _errors(400, "page and page_size must be integers")
    if not MIN_PAGE_SIZE <= size <= MAX_PAGE_SIZE:
        return _errors(400, f"page_size must be between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}")
    pages = max(1, math.ceil(len(items) / size))
    if page < 1 or page > pages:
        return _errors(400, "page out of range")
    chunk = items[(page - 1) * size : page * size]
    return web.json_response({"data": chunk, "page": page, "pages": pages, "results": len(items)})


@web.middleware
async def _gate(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.requests.append((request.method, request.path, dict(request.query)))
    if request.headers.get("Authorization") != f"Bearer {state.token}":
        return _errors(401, "Invalid Token")
    limit_headers = {
        "X-RateLimit-Limit": "800",
        "X-RateLimit-Remaining": "799",
        "X-RateLimit-Reset": str(int(time.time()) + 120),
    }
    if state.rate_limit_next > 0:
        state.rate_limit_next -= 1
        limit_headers.update(
            {
                "X-RateLimit-Remaining": "0",
                "Retry-After": str(state.retry_after),
                "X-RateLimit-Reset": str(int(time.time()) + state.retry_after),
            }
        )
        return _errors(429, "Too Many Requests", limit_headers)
    if state.fail_next:
        status = state.fail_next.pop(0)
        return _errors(status, "Not found" if status == 404 else "Linode busy.")
    response = await handler(request)
    response.headers.update(limit_headers)
    return response


async def _instances(request: web.Request) -> web.Response:
    return _paged(request, request.app[STATE_KEY].instances)


async def _types(request: web.Request) -> web.Response:
    return _paged(request, request.app[STATE_KEY].types)


async def _account(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].account)


async def _invoices(request: web.Request) -> web.Response:
    return _paged(request, request.app[STATE_KEY].invoices)


async def _invoice_items(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        invoice_id = int(request.match_info["invoice_id"])
    except ValueError:
        return _errors(404, "Not found")
    if invoice_id not in state.invoice_items:
        return _errors(404, "Not found")
    return _paged(request, state.invoice_items[invoice_id])


def make_app(state: LinodeState | None = None) -> web.Application:
    """The fake Linode API; mount it at the adapter's ``api.base_url`` (paths start with ``/v4``)."""
    app = web.Application(middlewares=[_gate])
    app[STATE_KEY] = state or LinodeState()
    app.router.add_get("/v4/linode/instances", _instances)
    app.router.add_get("/v4/linode/types", _types)
    app.router.add_get("/v4/account", _account)
    app.router.add_get("/v4/account/invoices", _invoices)
    app.router.add_get("/v4/account/invoices/{invoice_id}/items", _invoice_items)
    return app
