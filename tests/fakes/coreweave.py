"""A fake CoreWeave: the CKS API (``GET /v1beta1/cks/clusters``) plus, under ``/k8s/<cluster id>``,
each cluster's Kubernetes API server (nodes with CoreWeave's instance-type and lifecycle labels).

The clusters' ``apiServerEndpoint`` points back at this same server, so one FakeServer is a whole
CoreWeave org. Shapes follow docs.coreweave.com (CKS API reference, node labels); the CKS API's error
body is not documented, so the fake answers ``{"code": ..., "message": ...}`` (gRPC-gateway style).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fakes.kubernetes import VERSION, NodeList, make_node, status_body
from fakes.server import FakeApi

CKS_TOKEN = "cw-fake-api-access-token-0001"
CLUSTER_TOKEN = "cw-fake-cluster-sa-token-0002"


def _cw_node(
    name: str, uid: str, instance_type: str, gpus: int, product: str, *, state: str = "production"
) -> dict[str, Any]:
    return make_node(
        name,
        uid=uid,
        instance_type=instance_type,
        gpus=gpus,
        gpu_product=product,
        cpu="128",
        memory="2113929216Ki",
        ip=f"10.16.{len(name)}.{int(uid[-2:], 16)}",
        extra_labels={
            "node.kubernetes.io/type": instance_type,
            "node.coreweave.cloud/state": state,
            "node.coreweave.cloud/reserved": "org-1a2b3c",
            "node.coreweave.cloud/rack": "r12",
            "ib.coreweave.cloud/speed": "400G",
        },
        provider_id=f"coreweave://{name}",
    )


def default_clusters() -> list[dict[str, Any]]:
    return [
        {
            "id": "c0ffee00-0000-4000-8000-000000000001",
            "name": "train-east",
            "zone": "US-EAST-04A",
            "vpcId": "vpc-00000001",
            "public": True,
            "version": "1.30",
            "status": "STATUS_RUNNING",
            "createdAt": "2025-02-01T12:00:00Z",
            "updatedAt": "2025-03-01T12:00:00Z",
        },
        {
            "id": "c0ffee00-0000-4000-8000-000000000002",
            "name": "infer-west",
            "zone": "US-WEST-01A",
            "vpcId": "vpc-00000002",
            "public": True,
            "version": "1.30",
            "status": "STATUS_RUNNING",
            "createdAt": "2025-02-05T12:00:00Z",
            "updatedAt": "2025-03-05T12:00:00Z",
        },
    ]


def default_cluster_nodes() -> dict[str, list[dict[str, Any]]]:
    east, west = (c["id"] for c in default_clusters())
    return {
        east: [
            _cw_node(
                "g8h100-a01",
                "00000000-cw01-0000-0000-0000000000a1",
                "gd-8xh100ib-i128",
                8,
                "NVIDIA-H100-80GB-HBM3",
            ),
            _cw_node(
                "g8h100-a02",
                "00000000-cw01-0000-0000-0000000000a2",
                "gd-8xh100ib-i128",
                8,
                "NVIDIA-H100-80GB-HBM3",
            ),
            _cw_node(
                "g8h100-a03",
                "00000000-cw01-0000-0000-0000000000a3",
                "gd-8xh100ib-i128",
                8,
                "NVIDIA-H100-80GB-HBM3",
                state="triage",
            ),
        ],
        west: [
            _cw_node("cpu-w01", "00000000-cw02-0000-0000-0000000000b1", "cd-gp-i64-erapids", 0, ""),
        ],
    }


_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14}


class CoreWeaveFake(FakeApi):
    """CKS API plus per-cluster Kubernetes APIs under ``/k8s/<cluster id>`` (cluster token differs).

    Knobs: ``state.*`` (apply to the next requests of either API), ``cluster_nodes[cid]`` (a
    ``NodeList`` with ``expire_continue_next`` / ``forbid``).
    """

    def __init__(self, *, token: str = CKS_TOKEN, cluster_token: str = CLUSTER_TOKEN) -> None:
        self.clusters = default_clusters()
        self.cluster_token = cluster_token
        self.cluster_nodes = {cid: NodeList(nodes) for cid, nodes in default_cluster_nodes().items()}
        super().__init__(token=token)

    def authorized(self, request: web.Request) -> bool:
        expected = self.cluster_token if request.path.startswith("/k8s/") else self.state.token
        return request.headers.get("Authorization") == f"Bearer {expected}"

    def error_body(self, status: int, message: str) -> Any:
        return {"code": _GRPC_CODES.get(status, 2), "message": message, "details": []}

    def rate_limit_headers(self) -> dict[str, str]:
        return {}  # no rate-limit headers are documented for the CKS API

    def routes(self, router: web.UrlDispatcher) -> None:
        def endpoint(request: web.Request, cid: str) -> str:
            return f"http://{request.host}/k8s/{cid}"

        async def clusters(request: web.Request) -> web.Response:
            items = [dict(c, apiServerEndpoint=endpoint(request, c["id"])) for c in self.clusters]
            return web.json_response({"items": items})

        async def cluster(request: web.Request) -> web.Response:
            cid = request.match_info["cid"]
            for c in self.clusters:
                if c["id"] == cid:
                    return web.json_response({"cluster": dict(c, apiServerEndpoint=endpoint(request, cid))})
            return self.error(404, f"cluster {cid} not found")

        async def k8s_nodes(request: web.Request) -> web.Response:
            nodes = self.cluster_nodes.get(request.match_info["cid"])
            if nodes is None:
                return web.json_response(status_body(404, "NotFound", "no such cluster"), status=404)
            return nodes.respond(request)

        async def k8s_version(request: web.Request) -> web.Response:
            return web.json_response(VERSION)

        router.add_get("/v1beta1/cks/clusters", clusters)
        router.add_get("/v1beta1/cks/clusters/{cid}", cluster)
        router.add_get("/k8s/{cid}/api/v1/nodes", k8s_nodes)
        router.add_get("/k8s/{cid}/version", k8s_version)
