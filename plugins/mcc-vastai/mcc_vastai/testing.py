"""A local fake of the Vast.ai API, shipped so users and the collector's own suite can test the plugin.

Shapes follow docs.vast.ai: ``GET /api/v1/instances/`` (``limit`` max 25, keyset ``next_token``,
``{success, instances_found, total_instances, next_token, instances}``), ``GET /api/v0/users/current/``
and ``GET /api/v0/invoices/``. Errors are ``{"success": false, "error": ..., "msg": ...}``; a 429 says
"API requests too frequent" and, as documented, carries no ``Retry-After``.

    fake = VastFake()
    async with serve(fake) as url:   # http://127.0.0.1:<port>
        fake.rate_limit_next = 1
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

API_KEY = "vast-fake-api-key-0123456789abcdef"
MAX_LIMIT = 25


def _instance(
    iid: int, label: str, gpu: str, gpus: int, dph: float, status: str | None, start: float
) -> dict[str, Any]:
    return {
        "id": iid,
        "actual_status": status,
        "cur_state": "running" if status == "running" else "stopped",
        "intended_status": "running",
        "label": label,
        "image_uuid": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
        "machine_id": 1000 + iid % 100,
        "host_id": 77,
        "public_ipaddr": f"192.0.2.{iid % 250}",
        "start_date": start,
        "cpu_cores_effective": 16.0,
        "cpu_ram": 129024,
        "gpu_name": gpu,
        "num_gpus": gpus,
        "gpu_ram": 24576,
        "dph_total": dph,
        "geolocation": "Sweden, SE",
    }


def default_instances() -> list[dict[str, Any]]:
    """30 instances (two pages of 25 and 5): RTX 4090s, a few H100s, one being provisioned."""
    out = []
    for i in range(30):
        if i % 10 == 0:
            out.append(_instance(9000 + i, f"h100-{i}", "H100 SXM", 8, 19.254, "running", 1740823200.5))
        elif i == 29:
            out.append(_instance(9000 + i, "", "RTX 4090", 1, 0.4, None, 1741000000.0))
        else:
            status = "stopped" if i % 7 == 0 else "running"
            out.append(_instance(9000 + i, f"worker-{i}", "RTX 4090", 2, 0.753, status, 1740900000.0))
    return out


class VastFake:
    """Knobs: ``rate_limit_next``, ``fail_next`` (status), ``api_key``; log: ``requests`` (path, query)."""

    def __init__(self) -> None:
        self.api_key = API_KEY
        self.instances = default_instances()
        self.balance = 123.45
        self.invoices: list[dict[str, Any]] = [
            {
                "type": "charge",
                "description": "Instance 9000 GPU charge: 10.000 hours * $19.2540/hr",
                "timestamp": 1741000000,
                "quantity": "10.000",
                "rate": "19.2540",
                "amount": "192.540",
                "instance_id": 9000,
            },
            {
                "type": "charge",
                "description": "Instance 9001 GPU charge: 3.500 hours * $0.7530/hr",
                "timestamp": 1741003600,
                "quantity": "3.500",
                "rate": "0.7530",
                "amount": "2.636",
                "instance_id": 9001,
            },
            {
                "type": "payment",
                "description": "Stripe payment",
                "timestamp": 1740990000,
                "amount": "-200.00",
            },
            {
                "type": "charge",
                "description": "Old storage charge",
                "timestamp": 1600000000,
                "amount": "1.00",
                "instance_id": 1,
            },
        ]
        self.rate_limit_next = 0
        self.fail_next = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.app = web.Application(middlewares=[self._gate])
        self.app.router.add_get("/api/v1/instances/", self._list_instances)
        self.app.router.add_get("/api/v0/users/current/", self._user)
        self.app.router.add_get("/api/v0/invoices/", self._invoices)

    @staticmethod
    def _error(status: int, error: str, msg: str) -> web.Response:
        return web.json_response({"success": False, "error": error, "msg": msg}, status=status)

    @web.middleware
    async def _gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query)))
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            return web.json_response(
                {"detail": "API requests too frequent endpoint threshold=3.0"}, status=429
            )
        if self.fail_next:
            status, self.fail_next = self.fail_next, 0
            return self._error(status, "server_error", "internal error")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "invalid_api_key", "Invalid or missing API key")
        return await handler(request)

    async def _list_instances(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", MAX_LIMIT))
        except ValueError:
            return self._error(400, "invalid_args", "limit must be an integer")
        limit = 5 if limit <= 0 else min(limit, MAX_LIMIT)
        start = 0
        token = request.query.get("next_token")
        if token:
            try:
                start = int(json.loads(base64.b64decode(token))["values"]["offset"])
            except (ValueError, KeyError, TypeError):
                return self._error(400, "invalid_args", "invalid next_token")
        page = self.instances[start : start + limit]
        end = start + len(page)
        nxt = (
            base64.b64encode(json.dumps({"values": {"offset": end}}).encode()).decode()
            if end < len(self.instances)
            else None
        )
        return web.json_response(
            {
                "success": True,
                "instances_found": len(page),
                "total_instances": len(self.instances),
                "next_token": nxt,
                "instances": page,
            }
        )

    async def _user(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"id": 4242, "email": "ops@example.com", "balance": self.balance, "ssh_key": "", "sid": "s"}
        )

    async def _invoices(self, request: web.Request) -> web.Response:
        return web.json_response(self.invoices)


@contextlib.asynccontextmanager
async def serve(fake: VastFake) -> AsyncIterator[str]:
    """Serve ``fake`` on 127.0.0.1 (a free port); yields the base URL."""
    runner = web.AppRunner(fake.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server  # aiohttp exposes no public accessor for the bound port
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
