"""A fake of the Paperspace API v1 (api.paperspace.com/v1) for adapter tests.

Shapes follow Paperspace's OpenAPI (research/providers.md §9): ``GET /machines`` pages with the
``after`` cursor and ``limit``, answering ``{"hasMore", "items", "nextPage"?}``; machines carry
``machineType``, ``state``, ``region`` display names, ``ram`` in bytes and ``accelerators``;
``GET /billing/account-standing`` has no amounts; errors are ``{"code", "message", "details"?}``.
Paperspace documents no rate-limit headers; the 429 served on demand carries ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "ps-test-api-key-0123456789abcdef"
MAX_LIMIT = 120
GIB = 1024**3


def _machine(
    mid: str,
    name: str,
    mtype: str,
    state: str,
    region: str,
    cpus: int,
    ram_gib: int,
    accelerators: list[dict[str, Any]] | None,
    rate: float,
    created: str,
    ip: str | None,
) -> dict[str, Any]:
    return {
        "id": mid,
        "name": name,
        "state": state,
        "os": "Ubuntu 22.04",
        "machineType": mtype,
        "agentType": "LinuxHost",
        "cpus": cpus,
        "ram": ram_gib * GIB,
        "storageTotal": 100 * GIB,
        "storageUsed": 37 * GIB,
        "region": region,
        "publicIp": ip,
        "privateIp": "10.64.2.15",
        "networkId": "nd7l5vvl",
        "publicIpType": "static" if ip else "none",
        "dtCreated": created,
        "dtModified": created,
        "dtDeleted": None,
        "usageRate": rate,
        "storageRate": 7.0,
        "accelerators": accelerators or [],
        "autoShutdownEnabled": False,
        "autoSnapshotEnabled": False,
        "restorePointEnabled": False,
        "reservation": None,
    }


def default_machines() -> list[dict[str, Any]]:
    out = [
        _machine(
            "psq2h5xz9",
            "a100-train",
            "A100-80G",
            "ready",
            "East Coast (NY2)",
            12,
            90,
            [{"name": "A100-80G", "count": 1, "memory": 80}],
            3.18,
            "2024-10-01T06:00:00.000Z",
            "184.105.3.20",
        ),
        _machine(
            "psr8k1mn2",
            "h100x8-train",
            "H100x8",
            "starting",
            "East Coast (NY2)",
            160,
            1600,
            [{"name": "H100", "count": 8, "memory": 80}],
            47.60,
            "2024-10-02T09:15:00.000Z",
            "184.105.3.21",
        ),
        _machine(
            "pst0v3bc7",
            "notebook-cpu",
            "C5",
            "off",
            "Europe (AMS1)",
            4,
            8,
            None,
            0.08,
            "2024-09-15T12:00:00.000Z",
            None,
        ),
    ]
    for n in range(5):
        out.append(
            _machine(
                f"psw{n:04d}aa",
                f"p4000-{n}",
                "P4000",
                "ready",
                "West Coast (CA1)",
                8,
                30,
                [{"name": "P4000", "count": 1, "memory": 8}],
                0.51,
                "2024-09-20T00:00:00.000Z",
                f"184.105.4.{n + 1}",
            )
        )
    return out


@dataclass
class PaperspaceState:
    """Data served and knobs a test sets; ``requests`` logs (method, path, query) of every call."""

    api_key: str = API_KEY
    machines: list[dict[str, Any]] = field(default_factory=default_machines)
    standing: dict[str, Any] = field(
        default_factory=lambda: {
            "hasPaymentMethod": True,
            "isAdminLocked": False,
            "isInGoodStanding": True,
            "messages": [],
        }
    )
    forbidden: bool = False
    rate_limit_next: int = 0
    retry_after: int = 4
    fail_next: list[int] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


STATE_KEY = web.AppKey("paperspace_state", PaperspaceState)
_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"code": _CODES.get(status, "ERROR"), "message": message}, status=status, headers=headers
    )


@web.middleware
async def _gate(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.requests.append((request.method, request.path, dict(request.query)))
    if request.headers.get("Authorization") != f"Bearer {state.api_key}":
        return _error(401, "You are not authorized to access this resource")
    if state.forbidden:
        return _error(403, "API key lacks permission for this team")
    if state.rate_limit_next > 0:
        state.rate_limit_next -= 1
        return _error(429, "Too many requests", {"Retry-After": str(state.retry_after)})
    if state.fail_next:
        status = state.fail_next.pop(0)
        return _error(status, "Not found" if status == 404 else "Something went wrong")
    return await handler(request)


async def _machines(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        return _error(400, "limit must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        return _error(400, f"limit must be between 1 and {MAX_LIMIT}")
    start = 0
    after = request.query.get("after")
    if after is not None:
        ids = [m["id"] for m in state.machines]
        if after not in ids:
            return _error(400, "invalid cursor")
        start = ids.index(after) + 1
    chunk = state.machines[start : start + limit]
    has_more = start + limit < len(state.machines)
    body: dict[str, Any] = {"hasMore": has_more, "items": chunk}
    if has_more:
        body["nextPage"] = chunk[-1]["id"]
    return web.json_response(body)


async def _standing(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].standing)


def make_app(state: PaperspaceState | None = None) -> web.Application:
    """The fake Paperspace API; paths start with ``/v1``."""
    app = web.Application(middlewares=[_gate])
    app[STATE_KEY] = state or PaperspaceState()
    app.router.add_get("/v1/machines", _machines)
    app.router.add_get("/v1/billing/account-standing", _standing)
    return app
