"""A fake of the Lambda Cloud API v1 for adapter tests.

Shapes follow Lambda's OpenAPI spec (research/providers.md §7): every success is ``{"data": ...}``,
``/instances`` embeds ``instance_type.price_cents_per_hour`` (integer US cents), ``/instance-types``
is a map keyed by type name, errors are ``{"error": {"code", "message", "suggestion"?}}`` with
``global/invalid-api-key`` on 401. Lambda documents no pagination and no rate-limit headers; the
429 served on demand carries only ``Retry-After``, a generic HTTP signal.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "secret_lambda-test-key_0123456789abcdef"


def _itype(
    name: str, description: str, gpu: str, cents: int, vcpus: int, mem: int, disk: int, gpus: int
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "gpu_description": gpu,
        "price_cents_per_hour": cents,
        "specs": {"vcpus": vcpus, "memory_gib": mem, "storage_gib": disk, "gpus": gpus},
    }


def default_instance_types() -> dict[str, dict[str, Any]]:
    types = [
        _itype("gpu_1x_gh200", "1x GH200 (96 GB)", "GH200 (96 GB)", 149, 64, 432, 4096, 1),
        _itype(
            "gpu_8x_a100_80gb_sxm4", "8x A100 (80 GB SXM4)", "A100 (80 GB SXM4)", 1432, 240, 1800, 20480, 8
        ),
        _itype("gpu_1x_a10", "1x A10 (24 GB PCIe)", "A10 (24 GB PCIe)", 75, 30, 200, 1400, 1),
    ]
    regions = {
        "gpu_1x_gh200": [{"name": "us-east-3", "description": "Washington DC, USA"}],
        "gpu_1x_a10": [{"name": "us-west-1", "description": "California, USA"}],
    }
    return {
        t["name"]: {"instance_type": t, "regions_with_capacity_available": regions.get(t["name"], [])}
        for t in types
    }


def _instance(
    iid: str, name: str, status: str, type_name: str, region: str, ip: str, private_ip: str
) -> dict[str, Any]:
    itype = default_instance_types()[type_name]["instance_type"]
    return {
        "id": iid,
        "name": name,
        "ip": ip,
        "private_ip": private_ip,
        "status": status,
        "ssh_key_names": ["ops-laptop"],
        "file_system_names": ["shared-fs"],
        "region": {
            "name": region,
            "description": "Virginia, USA" if region == "us-east-1" else "California, USA",
        },
        "instance_type": itype,
        "hostname": f"{private_ip.replace('.', '-')}.cloud.lambdalabs.com",
        "jupyter_token": "53968f128c4a4489b688c2c0a181d083",
        "jupyter_url": f"https://jupyter-{iid[:8]}.lambdaspaces.com/?token=53968f128c4a4489b688c2c0a181d083",
        "is_reserved": False,
        "actions": {
            "migrate": {"available": False},
            "rebuild": {"available": False},
            "restart": {"available": True},
            "cold_reboot": {"available": True},
            "terminate": {"available": True},
        },
        "tags": [{"key": "team", "value": "ml"}],
    }


def default_instances() -> list[dict[str, Any]]:
    return [
        _instance(
            "0920582c7ff041399e34823a0be62549",
            "train-a100",
            "active",
            "gpu_8x_a100_80gb_sxm4",
            "us-east-1",
            "198.51.100.2",
            "10.0.2.100",
        ),
        _instance(
            "1a2b3c4d5e6f40718293a4b5c6d7e8f9",
            "infer-a10",
            "booting",
            "gpu_1x_a10",
            "us-west-1",
            "198.51.100.3",
            "10.0.3.17",
        ),
        _instance(
            "ffeeddccbbaa49988776655443322110",
            "old-gh200",
            "terminated",
            "gpu_1x_gh200",
            "us-east-1",
            "198.51.100.4",
            "10.0.2.200",
        ),
    ]


@dataclass
class LambdaState:
    """Data served and knobs a test sets; ``requests`` logs (method, path, query) of every call."""

    api_key: str = API_KEY
    instances: list[dict[str, Any]] = field(default_factory=default_instances)
    instance_types: dict[str, dict[str, Any]] = field(default_factory=default_instance_types)
    inactive_account: bool = False  # 403 global/account-inactive
    rate_limit_next: int = 0
    retry_after: int = 2
    fail_next: list[int] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


STATE_KEY = web.AppKey("lambda_state", LambdaState)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    if status == 401:
        body["error"]["suggestion"] = "Check your API key"
    return web.json_response(body, status=status, headers=headers)


def _authorized(request: web.Request, key: str) -> bool:
    header = request.headers.get("Authorization", "")
    if header == f"Bearer {key}":
        return True
    if header.startswith("Basic "):
        try:
            user = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:
            return False
        return user == f"{key}:"
    return False


@web.middleware
async def _gate(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.requests.append((request.method, request.path, dict(request.query)))
    if not _authorized(request, state.api_key):
        return _error(401, "global/invalid-api-key", "API key was invalid, expired, or deleted.")
    if state.inactive_account:
        return _error(403, "global/account-inactive", "Your account is inactive.")
    if state.rate_limit_next > 0:
        state.rate_limit_next -= 1
        return _error(
            429, "global/quota-exceeded", "Too many requests", {"Retry-After": str(state.retry_after)}
        )
    if state.fail_next:
        status = state.fail_next.pop(0)
        code = "global/object-does-not-exist" if status == 404 else "provider/internal-unavailable"
        return _error(status, code, "upstream failure" if status >= 500 else "not found")
    return await handler(request)


async def _instances(request: web.Request) -> web.Response:
    return web.json_response({"data": request.app[STATE_KEY].instances})


async def _instance_types(request: web.Request) -> web.Response:
    return web.json_response({"data": request.app[STATE_KEY].instance_types})


def make_app(state: LambdaState | None = None) -> web.Application:
    """The fake Lambda Cloud API; paths start with ``/api/v1``."""
    app = web.Application(middlewares=[_gate])
    app[STATE_KEY] = state or LambdaState()
    app.router.add_get("/api/v1/instances", _instances)
    app.router.add_get("/api/v1/instance-types", _instance_types)
    return app
