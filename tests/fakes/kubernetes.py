"""A fake Kubernetes API server: ``GET /api/v1/nodes`` with ``limit``/``continue``, bearer auth,
429 + ``Retry-After`` (API Priority and Fairness), 410 ``ResourceExpired`` for stale continue tokens,
and Status-object error bodies, shaped after the Kubernetes API reference.

Also used by the CoreWeave fake: a CKS cluster's API server is a Kubernetes API server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from fakes.server import FakeApi

TOKEN = "k8s-fake-token-0123456789"


def make_node(
    name: str,
    *,
    uid: str,
    instance_type: str = "",
    region: str = "",
    zone: str = "",
    gpus: int = 0,
    gpu_product: str = "",
    cpu: str = "8",
    memory: str = "32Gi",
    ready: str = "True",
    ip: str = "",
    created: str = "2025-01-10T08:00:00Z",
    extra_labels: dict[str, str] | None = None,
    beta_labels: bool = False,
    unschedulable: bool = False,
    provider_id: str = "",
) -> dict[str, Any]:
    """A Node object as the API returns it (only the fields a collector reads, plus a few more)."""
    labels: dict[str, str] = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    prefix_type = "beta.kubernetes.io/instance-type" if beta_labels else "node.kubernetes.io/instance-type"
    prefix_region = (
        "failure-domain.beta.kubernetes.io/region" if beta_labels else "topology.kubernetes.io/region"
    )
    prefix_zone = "failure-domain.beta.kubernetes.io/zone" if beta_labels else "topology.kubernetes.io/zone"
    if instance_type:
        labels[prefix_type] = instance_type
    if region:
        labels[prefix_region] = region
    if zone:
        labels[prefix_zone] = zone
    capacity = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "101430960Ki"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
        labels["nvidia.com/gpu.present"] = "true"
        labels["nvidia.com/gpu.count"] = str(gpus)
    if gpu_product:
        labels["nvidia.com/gpu.product"] = gpu_product
    labels.update(extra_labels or {})
    addresses = [{"type": "Hostname", "address": name}]
    if ip:
        addresses.insert(0, {"type": "InternalIP", "address": ip})
    spec: dict[str, Any] = {"podCIDR": "10.244.0.0/24"}
    if provider_id:
        spec["providerID"] = provider_id
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {
            "name": name,
            "uid": uid,
            "resourceVersion": "1000",
            "creationTimestamp": created,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "KubeletReady" if ready == "True" else "NodeStatusUnknown",
                },
            ],
            "addresses": addresses,
            "nodeInfo": {
                "kubeletVersion": "v1.30.4",
                "osImage": "Ubuntu 22.04.4 LTS",
                "architecture": "amd64",
            },
        },
    }


def default_nodes() -> list[dict[str, Any]]:
    """Five nodes: two 8x H100 nodes, one 1x L4 node with only beta labels, two CPU nodes (one NotReady)."""
    return [
        make_node(
            "gpu-h100-a",
            uid="0b1c7a52-0001-4c1e-9d7e-000000000001",
            instance_type="p5.48xlarge",
            region="us-east-1",
            zone="us-east-1a",
            gpus=8,
            gpu_product="NVIDIA-H100-80GB-HBM3",
            cpu="192",
            memory="2097152000Ki",
            ip="10.0.1.11",
            provider_id="aws:///us-east-1a/i-0abc0000000000001",
        ),
        make_node(
            "gpu-h100-b",
            uid="0b1c7a52-0002-4c1e-9d7e-000000000002",
            instance_type="p5.48xlarge",
            region="us-east-1",
            zone="us-east-1b",
            gpus=8,
            gpu_product="NVIDIA-H100-80GB-HBM3",
            cpu="192",
            memory="2097152000Ki",
            ip="10.0.1.12",
        ),
        make_node(
            "gpu-l4-old",
            uid="0b1c7a52-0003-4c1e-9d7e-000000000003",
            instance_type="g6.xlarge",
            region="us-west-2",
            zone="us-west-2c",
            gpus=1,
            gpu_product="NVIDIA-L4",
            cpu="3920m",
            memory="15Gi",
            ip="10.0.2.7",
            beta_labels=True,
        ),
        make_node(
            "cpu-a",
            uid="0b1c7a52-0004-4c1e-9d7e-000000000004",
            instance_type="m6i.2xlarge",
            region="us-east-1",
            zone="us-east-1a",
            ip="10.0.3.4",
        ),
        make_node(
            "cpu-b",
            uid="0b1c7a52-0005-4c1e-9d7e-000000000005",
            ready="Unknown",
            unschedulable=True,
            memory="16384Mi",
        ),
    ]


def status_body(code: int, reason: str, message: str, retry_after: int | None = None) -> dict[str, Any]:
    """A ``Status`` object, the body of every Kubernetes API error."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if retry_after is not None:
        body["details"] = {"retryAfterSeconds": retry_after}
    return body


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def encode_continue(offset: int, resource_version: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> int | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["start"])
    except (ValueError, KeyError, TypeError):
        return None


class NodeList:
    """Nodes served with chunking and the 410/403 knobs; one per (fake) cluster."""

    def __init__(self, nodes: list[dict[str, Any]], resource_version: str = "123456") -> None:
        self.nodes = nodes
        self.resource_version = resource_version
        self.expire_continue_next = 0  # answer the next N requests that carry `continue` with 410
        self.forbid = False  # RBAC without list on nodes -> 403
        self.list_calls = 0

    def respond(self, request: web.Request) -> web.Response:
        self.list_calls += 1
        q = request.query
        cont = q.get("continue", "")
        if cont and self.expire_continue_next > 0:
            self.expire_continue_next -= 1
            msg = "The provided continue parameter is too old to display a consistent list result."
            return _status_response(410, msg)
        if self.forbid:
            msg = 'nodes is forbidden: User "system:serviceaccount:mcc:mcc" cannot list resource "nodes"'
            return _status_response(403, msg)
        start = 0
        if cont:
            decoded = decode_continue(cont)
            if decoded is None:
                return _status_response(400, "invalid continue token")
            start = decoded
        try:
            limit = int(q.get("limit", "0"))
        except ValueError:
            return _status_response(400, "invalid limit")
        items = self.nodes
        end = len(items) if limit <= 0 else min(len(items), start + limit)
        metadata: dict[str, Any] = {"resourceVersion": self.resource_version}
        if end < len(items):
            metadata["continue"] = encode_continue(end, self.resource_version)
            metadata["remainingItemCount"] = len(items) - end
        body = {"kind": "NodeList", "apiVersion": "v1", "metadata": metadata, "items": items[start:end]}
        return web.json_response(body)


def _status_response(code: int, message: str) -> web.Response:
    return web.json_response(status_body(code, _REASONS.get(code, "Unknown"), message), status=code)


VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.4", "platform": "linux/amd64"}


class KubernetesFake(FakeApi):
    """``/api/v1/nodes`` (chunked), ``/version``; knobs: ``state.*`` plus ``nodes.expire_continue_next``,
    ``nodes.forbid``; 429s carry ``Retry-After`` and the APF headers."""

    def __init__(self, nodes: list[dict[str, Any]] | None = None, *, token: str = TOKEN) -> None:
        self.nodes = NodeList(default_nodes() if nodes is None else nodes)
        super().__init__(token=token)

    def routes(self, router: web.UrlDispatcher) -> None:
        async def nodes(request: web.Request) -> web.Response:
            return self.nodes.respond(request)

        async def version(request: web.Request) -> web.Response:
            return web.json_response(VERSION)

        router.add_get("/api/v1/nodes", nodes)
        router.add_get("/version", version)

    def error_body(self, status: int, message: str) -> Any:
        retry = int(self.state.retry_after or 1) if status == 429 else None
        if status == 401:
            message = "Unauthorized"
        return status_body(status, _REASONS.get(status, "Unknown"), message, retry)

    def rate_limit_headers(self) -> dict[str, str]:
        headers = super().rate_limit_headers()
        headers["X-Kubernetes-PF-FlowSchema-UID"] = "7b5b2c5e-0000-4000-8000-flowschema01"
        headers["X-Kubernetes-PF-PriorityLevel-UID"] = "1f0c2e1d-0000-4000-8000-prioritylvl1"
        return headers
