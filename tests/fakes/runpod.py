"""A fake of RunPod's GraphQL API (``POST /graphql``) and REST v1 billing (``GET /v1/billing/pods``).

Shapes follow runpod-python's queries and the REST v1 reference (research/providers.md §6): the
GraphQL answer is ``{"data": {"myself": {...}}}``; a bad key is HTTP 401; every other GraphQL
error is HTTP 200 with ``{"errors": [{"message": ...}]}`` (so the adapter must check ``errors``).
The fake validates requested field names against a small schema, the way a real GraphQL server
rejects unknown fields. REST v1 billing answers a bare array of ``{time, amount, timeBilledMs,
diskSpaceBilledGb, podId}`` buckets. 429s carry the IETF ``RateLimit``/``RateLimit-Policy`` pair
RunPod documents for its REST API, and ``Retry-After`` unless ``retry_after`` is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "rpa_TESTKEY0123456789ABCDEFGHIJ"

POD_FIELDS = frozenset(
    {
        "id",
        "name",
        "desiredStatus",
        "costPerHr",
        "gpuCount",
        "vcpuCount",
        "memoryInGb",
        "containerDiskInGb",
        "volumeInGb",
        "imageName",
        "podType",
        "machineId",
        "lastStatusChange",
        "uptimeSeconds",
        "machine",
        "gpuDisplayName",
        "runtime",
        "ports",
        "ip",
        "isIpPublic",
        "privatePort",
        "publicPort",
        "type",
        "uptimeInSeconds",
    }
)
MYSELF_FIELDS = frozenset({"id", "email", "clientBalance", "currentSpendPerHr", "spendLimit", "pods"})
KNOWN = POD_FIELDS | MYSELF_FIELDS | {"query", "myself"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _pod(
    pid: str,
    name: str,
    status: str,
    cost: float,
    gpus: int,
    gpu_name: str,
    vcpus: int,
    mem: int,
    uptime: int,
    ip: str | None,
) -> dict[str, Any]:
    ports = [
        {"ip": ip, "isIpPublic": True, "privatePort": 22, "publicPort": 40022, "type": "tcp"},
        {"ip": "10.65.0.2", "isIpPublic": False, "privatePort": 9400, "publicPort": 9400, "type": "http"},
    ]
    return {
        "id": pid,
        "name": name,
        "desiredStatus": status,
        "costPerHr": cost,
        "gpuCount": gpus,
        "vcpuCount": vcpus,
        "memoryInGb": mem,
        "containerDiskInGb": 50,
        "volumeInGb": 100,
        "imageName": "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04",
        "podType": "RESERVED",
        "machineId": f"m-{pid[:6]}",
        "lastStatusChange": f"Rented by User: Tue Oct 01 2024 08:00:00 GMT+0000 ({status.lower()})",
        "uptimeSeconds": uptime,
        "machine": {"gpuDisplayName": gpu_name},
        "runtime": {"uptimeInSeconds": uptime, "ports": ports} if status == "RUNNING" and ip else None,
    }


def default_pods() -> list[dict[str, Any]]:
    return [
        _pod(
            "k3x9vq2m1a7b4c",
            "llm-finetune",
            "RUNNING",
            2.49,
            1,
            "H100 80GB HBM3",
            16,
            125,
            86400,
            "203.0.113.50",
        ),
        _pod("p8w2z5n0r6t1yq", "sd-infer", "RUNNING", 0.44, 2, "RTX A5000", 8, 62, 3600, "203.0.113.51"),
        _pod("e4d3c2b1a0f9gh", "idle-a100", "EXITED", 1.19, 1, "A100 SXM 80GB", 16, 117, 0, None),
    ]


def default_billing() -> list[dict[str, Any]]:
    return [
        {
            "time": "2024-10-01T00:00:00Z",
            "amount": 59.76,
            "timeBilledMs": 86400000,
            "diskSpaceBilledGb": 150,
            "podId": "k3x9vq2m1a7b4c",
        },
        {
            "time": "2024-10-02T00:00:00Z",
            "amount": 0.44,
            "timeBilledMs": 3600000,
            "diskSpaceBilledGb": 150,
            "podId": "p8w2z5n0r6t1yq",
        },
        {
            "time": "2024-10-02T00:00:00Z",
            "amount": 0.1,
            "timeBilledMs": 0,
            "diskSpaceBilledGb": 100,
            "podId": "e4d3c2b1a0f9gh",
        },
    ]


@dataclass
class RunPodState:
    """Data served and knobs a test sets; ``requests`` logs (method, path, query) of every call."""

    api_key: str = API_KEY
    pods: list[dict[str, Any]] = field(default_factory=default_pods)
    myself: dict[str, Any] = field(
        default_factory=lambda: {
            "id": "user_2PyTJrLzeuwfZilRZ7JhCQDuSqo",
            "email": "ops@example.com",
            "clientBalance": 412.37,
            "currentSpendPerHr": 2.93,
            "spendLimit": 80,
        }
    )
    billing: list[dict[str, Any]] = field(default_factory=default_billing)
    graphql_error: str | None = None  # answer GraphQL with HTTP 200 + this error message
    rate_limit_next: int = 0
    retry_after: int | None = 5
    reset_in: int = 30
    fail_next: list[int] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)


STATE_KEY = web.AppKey("runpod_state", RunPodState)


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errors": [{"message": message}]}, status=status, headers=headers)


@web.middleware
async def _gate(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.requests.append((request.method, request.path, dict(request.query)))
    if request.headers.get("Authorization") != f"Bearer {state.api_key}":
        return _json_error(401, "Unauthorized")
    if state.rate_limit_next > 0:
        state.rate_limit_next -= 1
        headers = {
            "RateLimit-Policy": '"minute";q=100;w=60, "hour";q=2000;w=3600',
            "RateLimit": f'"minute";r=0;t={state.reset_in}, "hour";r=1500;t=1800',
        }
        if state.retry_after is not None:
            headers["Retry-After"] = str(state.retry_after)
        return _json_error(429, "Too many requests", headers)
    if state.fail_next:
        status = state.fail_next.pop(0)
        return _json_error(status, "Not found" if status == 404 else "Internal server error")
    return await handler(request)


def _select(obj: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k in keys}


async def _graphql(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        return _json_error(400, "Must provide query string.")
    state.bodies.append(body)
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(query, str):
        return _json_error(400, "Must provide query string.")
    if state.graphql_error:
        return web.json_response({"errors": [{"message": state.graphql_error}], "data": None})
    names = set(_NAME.findall(query))
    unknown = sorted(names - KNOWN)
    if unknown:
        return web.json_response({"errors": [{"message": f'Cannot query field "{unknown[0]}".'}]})
    if "myself" not in names:
        return web.json_response({"data": {}})
    myself = _select(state.myself, names)
    if "pods" in names:
        myself["pods"] = [_select(p, names) for p in state.pods]
    return web.json_response({"data": {"myself": myself}})


async def _billing_pods(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    bucket = request.query.get("bucketSize", "day")
    if bucket not in {"hour", "day", "week", "month", "year"}:
        return _json_error(400, "invalid bucketSize")
    start, end = request.query.get("startTime", ""), request.query.get("endTime", "")
    rows = [r for r in state.billing if (not start or r["time"] >= start) and (not end or r["time"] < end)]
    return web.json_response(rows)


def make_app(state: RunPodState | None = None) -> web.Application:
    """The fake RunPod API: GraphQL at ``/graphql``, REST v1 billing under ``/v1``."""
    app = web.Application(middlewares=[_gate])
    app[STATE_KEY] = state or RunPodState()
    app.router.add_post("/graphql", _graphql)
    app.router.add_get("/v1/billing/pods", _billing_pods)
    return app
