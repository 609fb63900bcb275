"""A fake OVHcloud API (``/1.0``) that verifies signed requests the way the real one does.

Every call but ``GET /auth/time`` must carry ``X-Ovh-Application``, ``X-Ovh-Consumer``,
``X-Ovh-Timestamp`` and ``X-Ovh-Signature`` = "$1$" + sha1_hex(secret+consumer+METHOD+url+body+ts).
The fake's clock runs ``time_offset`` seconds ahead of the host's, so a client that does not apply
the delta from ``/auth/time`` is rejected. Shapes follow research/providers.md §5 (python-ovh and
the generated typings of the OVH schemas): ``/cloud/project`` lists IDs (N+1 fetches), prices are
``{currencyCode, text, value}`` with JSON-number values, usage totals carry no currency (take it
from ``/me``), errors are ``{"errorCode", "httpCode", "message"}``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from aiohttp import web

from fakes.server import FakeApi

APP_KEY = "ovh-app-key-7f3a"
APP_SECRET = "ovh-app-secret-9c1e7b2d"
CONSUMER_KEY = "ovh-consumer-key-4d8e2a6f"
PREFIX = "/1.0"
MAX_SKEW_S = 30.0  # the fake's tolerance for a timestamp that ignores /auth/time

PROJECT_A = "5f8b1c3a9d2e4f6a8b0c1d2e3f4a5b6c"
PROJECT_B = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"


def ovh_signature(secret: str, consumer: str, method: str, url: str, body: str, timestamp: str) -> str:
    """The documented OVH signature (independent of the adapter's code, for the fake and tests)."""
    raw = "+".join((secret, consumer, method.upper(), url, body, timestamp))
    return "$1$" + hashlib.sha1(raw.encode()).hexdigest()


def _instance(
    iid: str, name: str, flavor_id: str, plan: str, region: str, ip: str, created: str, status: str = "ACTIVE"
) -> dict[str, Any]:
    return {
        "id": iid,
        "name": name,
        "region": region,
        "flavorId": flavor_id,
        "imageId": "6b3a0a0a-1111-4b1e-9f00-ubuntu2204",
        "status": status,
        "created": created,
        "planCode": plan,
        "monthlyBilling": None,
        "ipAddresses": [
            {
                "ip": "2001:41d0:304:200::1b2c",
                "type": "public",
                "version": 6,
                "networkId": "ext-net",
                "gatewayIp": None,
            },
            {"ip": ip, "type": "public", "version": 4, "networkId": "ext-net", "gatewayIp": "51.68.0.1"},
        ],
        "operationIds": [],
        "currentMonthOutgoingTraffic": 1073741824,
        "sshKeyId": "c3NoLWtleS0x",
    }


def _flavor(fid: str, name: str, vcpus: int, ram: int, ftype: str, region: str) -> dict[str, Any]:
    return {
        "id": fid,
        "name": name,
        "vcpus": vcpus,
        "ram": ram,
        "disk": 400,
        "type": ftype,
        "osType": "linux",
        "region": region,
        "available": True,
        "planCodes": {"hourly": f"{name}.consumption", "monthly": f"{name}.monthly.postpaid"},
        "quota": 4,
        "inboundBandwidth": 25000,
        "outboundBandwidth": 25000,
    }


def _price(value: float, currency: str = "EUR") -> dict[str, Any]:
    return {"currencyCode": currency, "text": f"{value:.2f} €", "value": value}


class OvhFake(FakeApi):
    """Knobs: ``state.*``, ``time_offset`` (fake clock minus host clock), ``auth_time_calls``."""

    public_paths = frozenset({f"{PREFIX}/auth/time"})

    def __init__(self, *, time_offset: float = 7200.0) -> None:
        self.time_offset = time_offset
        self.app_key = APP_KEY
        self.app_secret = APP_SECRET
        self.consumer_key = CONSUMER_KEY
        self.auth_time_calls = 0
        self.rejections: list[str] = []
        self.projects = [PROJECT_A, PROJECT_B]
        self.flavors = {
            PROJECT_A: [
                _flavor("f-h100-380", "h100-380", 30, 380000, "ovh.gpu", "GRA11"),
                _flavor("f-l40s-180", "l40s-180", 30, 180000, "ovh.gpu", "GRA11"),
                _flavor("f-b3-8", "b3-8", 2, 8000, "ovh.ssd.eg", "GRA11"),
            ],
            PROJECT_B: [_flavor("f-t1-90", "t1-90", 18, 90000, "ovh.gpu", "BHS5")],
        }
        self.instances = {
            PROJECT_A: [
                _instance(
                    "i-a-001",
                    "trainer-h100",
                    "f-h100-380",
                    "h100-380.consumption",
                    "GRA11",
                    "51.68.10.1",
                    "2025-03-01T10:00:00Z",
                ),
                _instance(
                    "i-a-002",
                    "infer-l40s",
                    "f-l40s-180",
                    "l40s-180.monthly.postpaid",
                    "GRA11",
                    "51.68.10.2",
                    "2025-03-02T11:30:00Z",
                ),
                _instance(
                    "i-a-003",
                    "bastion",
                    "f-b3-8",
                    "b3-8.consumption",
                    "GRA11",
                    "51.68.10.3",
                    "2025-01-15T08:00:00Z",
                    "SHUTOFF",
                ),
            ],
            PROJECT_B: [
                _instance(
                    "i-b-001",
                    "legacy-v100",
                    "f-t1-90",
                    "t1-90.consumption",
                    "BHS5",
                    "148.113.5.9",
                    "2024-11-20T09:00:00Z",
                    "BUILD",
                ),
            ],
        }
        self.bills = {
            "FR12345678": {
                "billId": "FR12345678",
                "date": "2025-03-01T00:00:00+01:00",
                "orderId": 987654,
                "category": "autorenew",
                "pdfUrl": "https://www.ovh.com/cgi-bin/order/facture.pdf?reference=FR12345678&passwd=secretpw",
                "url": "https://www.ovh.com/cgi-bin/order/facture.cgi?reference=FR12345678&passwd=secretpw",
                "password": "secretpw",
                "priceWithTax": _price(1746.18),
                "priceWithoutTax": _price(1455.15),
                "tax": _price(291.03),
            }
        }
        self.bill_details = {
            "FR12345678": {
                "FR12345678-1": {
                    "billDetailId": "FR12345678-1",
                    "description": "Public Cloud project 5f8b1c3a - h100-380 instances",
                    "domain": PROJECT_A,
                    "periodStart": "2025-02-01",
                    "periodEnd": "2025-02-28",
                    "quantity": "1",
                    "totalPrice": _price(1400.05),
                    "unitPrice": _price(1400.05),
                },
                "FR12345678-2": {
                    "billDetailId": "FR12345678-2",
                    "description": "Public Cloud project 5f8b1c3a - storage",
                    "domain": PROJECT_A,
                    "periodStart": "2025-02-01",
                    "periodEnd": "2025-02-28",
                    "quantity": "1",
                    "totalPrice": _price(55.10),
                    "unitPrice": _price(55.10),
                },
            }
        }
        self.usage = {
            PROJECT_A: {
                "period": {"from": "2025-03-01T00:00:00Z", "to": "2025-03-31T23:59:59Z"},
                "lastUpdate": "2025-03-10T12:00:00Z",
                "hourlyUsage": {
                    "instance": [
                        {
                            "reference": "h100-380",
                            "region": "GRA11",
                            "totalPrice": 672.1,
                            "quantity": {"unit": "Hour", "value": 224},
                            "details": [
                                {
                                    "instanceId": "i-a-001",
                                    "quantity": {"unit": "Hour", "value": 224},
                                    "totalPrice": 672.1,
                                }
                            ],
                        },
                        {
                            "reference": "b3-8",
                            "region": "GRA11",
                            "totalPrice": 0.2,
                            "quantity": {"unit": "Hour", "value": 5},
                            "details": [
                                {
                                    "instanceId": "i-a-003",
                                    "quantity": {"unit": "Hour", "value": 5},
                                    "totalPrice": 0.2,
                                }
                            ],
                        },
                    ],
                    "storage": [],
                    "volume": [],
                    "snapshot": [],
                    "instanceBandwidth": [],
                    "instanceOption": [],
                },
                "monthlyUsage": {
                    "instance": [
                        {
                            "reference": "l40s-180",
                            "region": "GRA11",
                            "totalPrice": 1300.0,
                            "details": [
                                {
                                    "instanceId": "i-a-002",
                                    "activation": "2025-03-02T11:30:00Z",
                                    "totalPrice": 1300.0,
                                }
                            ],
                        }
                    ],
                    "instanceOption": [],
                    "certification": [],
                },
                "resourcesUsage": [],
            },
            PROJECT_B: {
                "period": {"from": "2025-03-01T00:00:00Z", "to": "2025-03-31T23:59:59Z"},
                "lastUpdate": "2025-03-10T12:00:00Z",
                "hourlyUsage": None,
                "monthlyUsage": None,
                "resourcesUsage": [],
            },
        }
        super().__init__(token="")

    # ---- auth ----------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.time_offset

    def error_body(self, status: int, message: str) -> Any:
        code = {
            400: "INVALID_SIGNATURE",
            403: "INVALID_CREDENTIAL",
            404: "NOT_FOUND",
            429: "TOO_MANY_REQUESTS",
        }
        return {"errorCode": code.get(status, "INTERNAL_ERROR"), "httpCode": f"{status}", "message": message}

    def rate_limit_headers(self) -> dict[str, str]:
        return {}  # none documented for the OVH REST API

    def authorized(self, request: web.Request) -> bool:
        return True  # checked in the signature middleware below, with OVH's own error codes

    def routes(self, router: web.UrlDispatcher) -> None:
        self.app.middlewares.append(self._signature_check)

        def get(path: str, handler: Any) -> None:
            router.add_get(PREFIX + path, handler)

        get("/auth/time", self._auth_time)
        get("/me", self._me)
        get("/me/bill", self._bills)
        get("/me/bill/{bid}", self._bill)
        get("/me/bill/{bid}/details", self._bill_detail_ids)
        get("/me/bill/{bid}/details/{did}", self._bill_detail)
        get("/cloud/project", self._projects)
        get("/cloud/project/{sn}/instance", self._instances)
        get("/cloud/project/{sn}/flavor", self._flavors)
        get("/cloud/project/{sn}/usage/current", self._usage)

    @web.middleware
    async def _signature_check(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in self.public_paths:
            return await handler(request)
        h = request.headers
        if h.get("X-Ovh-Application") != self.app_key:
            self.rejections.append("application")
            return web.json_response(
                {
                    "errorCode": "INVALID_KEY",
                    "httpCode": "403 Forbidden",
                    "message": "This application key is invalid",
                },
                status=403,
            )
        if h.get("X-Ovh-Consumer") != self.consumer_key:
            self.rejections.append("consumer")
            return web.json_response(
                {
                    "errorCode": "INVALID_CREDENTIAL",
                    "httpCode": "403 Forbidden",
                    "message": "This credential is not valid",
                },
                status=403,
            )
        ts = h.get("X-Ovh-Timestamp", "")
        body = (await request.read()).decode() if request.can_read_body else ""
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        expected = ovh_signature(self.app_secret, self.consumer_key, request.method, url, body, ts)
        try:
            skew = abs(float(ts) - self.now())
        except ValueError:
            skew = float("inf")
        if h.get("X-Ovh-Signature") != expected or skew > MAX_SKEW_S:
            self.rejections.append("signature" if skew <= MAX_SKEW_S else "timestamp")
            return web.json_response(
                {
                    "errorCode": "INVALID_SIGNATURE",
                    "httpCode": "400 Bad Request",
                    "message": "Invalid signature",
                },
                status=400,
            )
        return await handler(request)

    # ---- handlers ------------------------------------------------------------------------------

    async def _auth_time(self, request: web.Request) -> web.Response:
        self.auth_time_calls += 1
        return web.json_response(int(self.now()))

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"nichandle": "ab12345-ovh", "ovhSubsidiary": "FR", "currency": {"code": "EUR", "symbol": "EURO"}}
        )

    async def _bills(self, request: web.Request) -> web.Response:
        return web.json_response(sorted(self.bills))

    def _missing(self, what: str) -> web.Response:
        return self.error(404, f"The requested object ({what}) does not exist")

    async def _bill(self, request: web.Request) -> web.Response:
        bill = self.bills.get(request.match_info["bid"])
        return web.json_response(bill) if bill else self._missing("billId")

    async def _bill_detail_ids(self, request: web.Request) -> web.Response:
        details = self.bill_details.get(request.match_info["bid"])
        return web.json_response(sorted(details)) if details is not None else self._missing("billId")

    async def _bill_detail(self, request: web.Request) -> web.Response:
        detail = self.bill_details.get(request.match_info["bid"], {}).get(request.match_info["did"])
        return web.json_response(detail) if detail else self._missing("billDetailId")

    async def _projects(self, request: web.Request) -> web.Response:
        return web.json_response(self.projects)

    async def _instances(self, request: web.Request) -> web.Response:
        items = self.instances.get(request.match_info["sn"])
        return web.json_response(items) if items is not None else self._missing("serviceName")

    async def _flavors(self, request: web.Request) -> web.Response:
        items = self.flavors.get(request.match_info["sn"])
        return web.json_response(items) if items is not None else self._missing("serviceName")

    async def _usage(self, request: web.Request) -> web.Response:
        usage = self.usage.get(request.match_info["sn"])
        return web.json_response(usage) if usage is not None else self._missing("serviceName")
