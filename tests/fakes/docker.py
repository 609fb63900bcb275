"""A fake Docker Engine API (served on a unix socket by ``FakeUnixServer``).

Shapes follow moby's ``api/swagger.yaml`` (research/providers.md §11): paths carry a ``/v1.XX``
prefix and a version outside [min, max] gets 400; ``GET /containers/json?all=1`` returns
ContainerSummary objects (``Created`` in unix seconds, ``Names`` with a leading slash, no
DeviceRequests); ``GET /containers/{id}/json`` carries ``HostConfig.DeviceRequests``; errors are
``{"message": "..."}``. There is no auth: access is the socket's file permissions.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fakes.server import FakeApi

MIN_VERSION = (1, 24)
MAX_VERSION = (1, 47)


def _container(
    cid: str,
    name: str,
    image: str,
    state: str,
    created: int,
    *,
    device_requests: list[dict[str, Any]] | None = None,
    nano_cpus: int = 0,
    memory: int = 0,
    labels: dict[str, str] | None = None,
    ip: str = "",
) -> dict[str, Any]:
    """Both views of one container: ``summary`` (list) and ``inspect`` (``/containers/{id}/json``)."""
    status = {"running": "Up 4 days", "exited": "Exited (0) 2 hours ago", "created": "Created"}.get(
        state, state
    )
    networks = (
        {"bridge": {"IPAddress": ip, "Gateway": "172.17.0.1", "MacAddress": "02:42:ac:11:00:02"}}
        if ip
        else {}
    )
    summary = {
        "Id": cid,
        "Names": [f"/{name}"],
        "Image": image,
        "ImageID": "sha256:" + "ab" * 32,
        "Command": "python train.py",
        "Created": created,
        "Ports": [],
        "Labels": labels or {},
        "State": state,
        "Status": status,
        "HostConfig": {"NetworkMode": "bridge"},
        "NetworkSettings": {"Networks": networks},
        "Mounts": [],
    }
    inspect = {
        "Id": cid,
        "Created": "2025-03-01T10:00:00.123456789Z",
        "Name": f"/{name}",
        "Image": "sha256:" + "ab" * 32,
        "State": {"Status": state, "Running": state == "running", "StartedAt": "2025-03-01T10:00:01Z"},
        "Config": {"Image": image, "Labels": labels or {}, "Hostname": cid[:12]},
        "HostConfig": {
            "NetworkMode": "bridge",
            "NanoCpus": nano_cpus,
            "Memory": memory,
            "Runtime": "runc",
            "DeviceRequests": device_requests,
        },
        "NetworkSettings": {"Networks": networks},
    }
    return {"summary": summary, "inspect": inspect}


def default_containers() -> list[dict[str, Any]]:
    gpu_all = [{"Driver": "nvidia", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}]
    gpu_two = [
        {"Driver": "nvidia", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]], "Options": {}}
    ]
    gpu_one = [
        {"Driver": "", "Count": 1, "DeviceIDs": None, "Capabilities": [["gpu", "utility"]], "Options": {}}
    ]
    return [
        _container(
            "4f3c2b1a" + "0" * 56,
            "trainer",
            "nvcr.io/nvidia/pytorch:24.05-py3",
            "running",
            1740823200,
            device_requests=gpu_two,
            nano_cpus=16_000_000_000,
            memory=64 * 1024**3,
            labels={"com.docker.compose.project": "ml", "team": "vision"},
            ip="172.17.0.2",
        ),
        _container(
            "9e8d7c6b" + "1" * 56,
            "dcgm-exporter",
            "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.6-3.4.2-ubuntu22.04",
            "running",
            1740800000,
            device_requests=gpu_all,
            ip="172.17.0.3",
        ),
        _container("1a2b3c4d" + "2" * 56, "notebook", "jupyter/base-notebook:latest", "exited", 1740700000),
        _container(
            "5e6f7a8b" + "3" * 56,
            "infer",
            "vllm/vllm-openai:v0.5.0",
            "restarting",
            1740900000,
            device_requests=gpu_one,
        ),
    ]


INFO = {
    "ID": "7TRN:IPZB:QYBB:VPBQ:UWYB:VERF:COMR:ZWDP:NDPU:LM2N:XPRA:EXAM",
    "Name": "gpu-host-07",
    "ServerVersion": "26.1.3",
    "OperatingSystem": "Ubuntu 22.04.4 LTS",
    "OSType": "linux",
    "Architecture": "x86_64",
    "NCPU": 64,
    "MemTotal": 540_000_000_000,
    "Containers": 4,
    "ContainersRunning": 2,
    "ContainersPaused": 0,
    "ContainersStopped": 1,
    "Images": 12,
    "Runtimes": {"runc": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"}},
    "DefaultRuntime": "runc",
}


def _version_of(prefix: str) -> tuple[int, int] | None:
    try:
        major, minor = prefix.lstrip("v").split(".", 1)
        return int(major), int(minor)
    except ValueError:
        return None


class DockerFake(FakeApi):
    """Knobs: ``state.*``, ``containers`` (list of {summary, inspect}), ``info``, ``inspect_missing``."""

    def __init__(self) -> None:
        self.containers = default_containers()
        self.info = dict(INFO)
        self.inspect_missing: set[str] = set()  # container ids whose inspect answers 404 (removed meanwhile)
        super().__init__(token="")

    def authorized(self, request: web.Request) -> bool:
        return True

    def error_body(self, status: int, message: str) -> Any:
        return {"message": message}

    def rate_limit_headers(self) -> dict[str, str]:
        return {}

    def routes(self, router: web.UrlDispatcher) -> None:
        async def ping(request: web.Request) -> web.Response:
            return web.Response(text="OK", headers={"Api-Version": "1.47", "Docker-Experimental": "false"})

        router.add_get("/_ping", ping)
        router.add_get("/{ver}/containers/json", self._versioned(self._list))
        router.add_get("/{ver}/containers/{cid}/json", self._versioned(self._inspect))
        router.add_get("/{ver}/info", self._versioned(self._info))
        router.add_get("/{ver}/version", self._versioned(self._version))

    def _versioned(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            ver = _version_of(request.match_info["ver"])
            if ver is None:
                return self.error(404, "page not found")
            if ver > MAX_VERSION:
                msg = f"client version {ver[0]}.{ver[1]} is too new. Maximum supported API version is 1.47"
                return self.error(400, msg)
            if ver < MIN_VERSION:
                msg = f"client version {ver[0]}.{ver[1]} is too old. Minimum supported API version is 1.24"
                return self.error(400, msg)
            return await handler(request)

        return wrapped

    async def _list(self, request: web.Request) -> web.Response:
        show_all = request.query.get("all", "") in ("1", "true", "True")
        items = [c["summary"] for c in self.containers if show_all or c["summary"]["State"] == "running"]
        return web.json_response(items)

    async def _inspect(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        for c in self.containers:
            if c["summary"]["Id"] == cid and cid not in self.inspect_missing:
                return web.json_response(c["inspect"])
        return self.error(404, f"No such container: {cid}")

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info)

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"Version": "26.1.3", "ApiVersion": "1.45", "MinAPIVersion": "1.24", "Os": "linux"}
        )
