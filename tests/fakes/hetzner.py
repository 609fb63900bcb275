"""A fake of the Hetzner Cloud API v1 for adapter tests.

Shapes follow hcloud-go's schema (research/providers.md §4): ``{"servers": [...], "meta":
{"pagination": {...}}}``, ``server_type.prices[]`` per location with net/gross *strings* in EUR,
``{"error": {"code", "message", "details"}}`` error bodies and ``RateLimit-Limit/Remaining/Reset``
(unix timestamp) headers on every answer, 429 ``rate_limit_exceeded`` when the limit is hit.
Hetzner Cloud has no GPU server types; GPU hosts are tagged with labels by convention.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "hetzner-project-token-abcdef"
MAX_PER_PAGE = 50


def _price(
    location: str, hourly_net: str, hourly_gross: str, monthly_net: str, monthly_gross: str
) -> dict[str, Any]:
    return {
        "location": location,
        "price_hourly": {"net": hourly_net, "gross": hourly_gross},
        "price_monthly": {"net": monthly_net, "gross": monthly_gross},
        "included_traffic": 21990232555520,
        "price_per_tb_traffic": {"net": "1.0000000000", "gross": "1.1900000000000000"},
    }


def default_server_types() -> list[dict[str, Any]]:
    def stype(
        sid: int, name: str, cores: int, memory: float, disk: int, cpu_type: str, prices: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "id": sid,
            "name": name,
            "description": name.upper(),
            "cores": cores,
            "memory": memory,
            "disk": disk,
            "storage_type": "local",
            "cpu_type": cpu_type,
            "architecture": "x86",
            "deprecated": False,
            "deprecation": None,
            "prices": prices,
        }

    return [
        stype(
            22,
            "cx22",
            2,
            4.0,
            40,
            "shared",
            [
                _price("fsn1", "0.0060000000", "0.0071400000000000", "3.7900000000", "4.5101000000000000"),
                _price("nbg1", "0.0060000000", "0.0071400000000000", "3.7900000000", "4.5101000000000000"),
                _price("ash", "0.0080000000", "0.0080000000000000", "4.9900000000", "4.9900000000000000"),
            ],
        ),
        stype(
            96,
            "ccx63",
            48,
            192.0,
            960,
            "dedicated",
            [
                _price(
                    "fsn1", "0.5710000000", "0.6794900000000000", "356.4900000000", "424.2231000000000000"
                ),
                _price(
                    "hel1", "0.5710000000", "0.6794900000000000", "356.4900000000", "424.2231000000000000"
                ),
            ],
        ),
    ]


def _server(
    sid: int,
    name: str,
    status: str,
    stype: dict[str, Any],
    location: str,
    city: str,
    ip: str,
    created: str,
    labels: dict[str, str],
) -> dict[str, Any]:
    loc = {
        "id": 1,
        "name": location,
        "description": f"{city} DC Park 1",
        "country": "DE",
        "city": city,
        "latitude": 50.47612,
        "longitude": 12.370071,
        "network_zone": "eu-central",
    }
    return {
        "id": sid,
        "name": name,
        "status": status,
        "created": created,
        "public_net": {
            "ipv4": {"id": sid * 10, "ip": ip, "blocked": False, "dns_ptr": f"static.{ip}.clients"},
            "ipv6": None,
            "floating_ips": [],
            "firewalls": [],
        },
        "private_net": [],
        "server_type": stype,
        "datacenter": {
            "id": 4,
            "name": f"{location}-dc14",
            "description": f"{city} 1 virtual DC 14",
            "location": loc,
        },
        "image": {"id": 67794396, "type": "system", "name": "ubuntu-24.04"},
        "labels": labels,
        "protection": {"delete": False, "rebuild": False},
        "included_traffic": 21990232555520,
        "outgoing_traffic": 123456,
        "ingoing_traffic": 654321,
        "primary_disk_size": stype["disk"],
        "locked": False,
    }


def default_servers() -> list[dict[str, Any]]:
    types = {t["name"]: t for t in default_server_types()}
    out = [
        _server(
            42,
            "train-gpu-01",
            "running",
            types["ccx63"],
            "fsn1",
            "Falkenstein",
            "203.0.113.42",
            "2024-10-01T06:00:00+00:00",
            {"gpu_model": "NVIDIA-L4", "gpu_count": "1", "team": "ml"},
        ),
        _server(
            43,
            "web-01",
            "off",
            types["cx22"],
            "nbg1",
            "Nuremberg",
            "203.0.113.43",
            "2024-09-15T12:30:00+00:00",
            {"team": "web"},
        ),
    ]
    for n in range(44, 106):  # 64 servers: two pages at per_page=50
        out.append(
            _server(
                n,
                f"worker-{n}",
                "running",
                types["cx22"],
                "fsn1",
                "Falkenstein",
                f"203.0.113.{n}",
                "2024-08-01T00:00:00+00:00",
                {},
            )
        )
    return out


@dataclass
class HetznerState:
    """Data served and knobs a test sets; ``requests`` logs (method, path, query) of every call."""

    token: str = TOKEN
    servers: list[dict[str, Any]] = field(default_factory=default_servers)
    server_types: list[dict[str, Any]] = field(default_factory=default_server_types)
    rate_limit_next: int = 0
    reset_in: int = 7  # RateLimit-Reset = now + reset_in on 429s
    fail_next: list[int] = field(default_factory=list)
    readonly_forbidden: bool = False  # answer 403 forbidden (a token without the needed permission)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


STATE_KEY = web.AppKey("hetzner_state", HetznerState)

_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "maintenance",
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"code": _CODES.get(status, "service_error"), "message": message, "details": {}}}
    return web.json_response(body, status=status, headers=headers)


def _paged(request: web.Request, key: str, items: list[dict[str, Any]]) -> web.Response:
    try:
        page = int(request.query.get("page", "1"))
        per_page = int(request.query.get("per_page", "25"))
    except ValueError:
        return _error(400, "invalid page or per_page")
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    last = max(1, math.ceil(len(items) / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    meta = {
        "pagination": {
            "page": page,
            "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last else None,
            "last_page": last,
            "total_entries": len(items),
        }
    }
    return web.json_response({key: chunk, "meta": meta})


@web.middleware
async def _gate(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.requests.append((request.method, request.path, dict(request.query)))
    if request.headers.get("Authorization") != f"Bearer {state.token}":
        return _error(401, "unable to authenticate")
    if state.readonly_forbidden:
        return _error(403, "insufficient permissions for this token")
    headers = {
        "RateLimit-Limit": "3600",
        "RateLimit-Remaining": "3599",
        "RateLimit-Reset": str(int(time.time()) + 1),
    }
    if state.rate_limit_next > 0:
        state.rate_limit_next -= 1
        headers.update(
            {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + state.reset_in)}
        )
        return _error(429, "limit of 3600 requests per hour reached", headers)
    if state.fail_next:
        status = state.fail_next.pop(0)
        return _error(status, "server not found" if status == 404 else "service unavailable")
    response = await handler(request)
    response.headers.update(headers)
    return response


async def _servers(request: web.Request) -> web.Response:
    return _paged(request, "servers", request.app[STATE_KEY].servers)


async def _server_types(request: web.Request) -> web.Response:
    return _paged(request, "server_types", request.app[STATE_KEY].server_types)


async def _pricing(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    types = [{"id": t["id"], "name": t["name"], "prices": t["prices"]} for t in state.server_types]
    return web.json_response({"pricing": {"currency": "EUR", "vat_rate": "19.00", "server_types": types}})


def make_app(state: HetznerState | None = None) -> web.Application:
    """The fake Hetzner Cloud API; paths start with ``/v1``."""
    app = web.Application(middlewares=[_gate])
    app[STATE_KEY] = state or HetznerState()
    app.router.add_get("/v1/servers", _servers)
    app.router.add_get("/v1/server_types", _server_types)
    app.router.add_get("/v1/pricing", _pricing)
    return app
