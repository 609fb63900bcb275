"""Kubernetes Nodes as ``Instance`` rows: list them (chunked) and read GPU, size and placement labels.

Shared by the Kubernetes adapter and the CoreWeave adapter (a CKS cluster is a Kubernetes cluster),
so the label fallbacks and quantity parsing live in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import structlog

from multicloud_collector.providers.http import ApiClient, ApiError, paginate_continue
from multicloud_collector.providers.money import parse_time
from multicloud_collector.providers.records import Instance, PriceSource

log = structlog.get_logger(__name__)

NODES_PATH = "/api/v1/nodes"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
# Current labels first, then the deprecated beta ones older clusters still set.
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
GPU_PRODUCT_LABELS = ("nvidia.com/gpu.product", "amd.com/gpu.product")

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(1024),
    "Mi": Decimal(1024**2),
    "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4),
    "Pi": Decimal(1024**5),
    "Ei": Decimal(1024**6),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$"
)
_MIB = Decimal(1024**2)


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes resource quantity ("8", "3920m", "15Gi", "1e3", "128974848") as a Decimal, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        return None
    m = _QUANTITY.match(value.strip())
    if m is None:
        return None
    number, exponent, suffix = m.groups()
    try:
        base = Decimal(number)
        if exponent:
            return base * Decimal(10) ** int(exponent[1:])
    except (InvalidOperation, ValueError):
        return None
    return base * _SUFFIXES[suffix or ""]


def _int_floor(value: Decimal | None) -> int | None:
    return None if value is None else int(value.to_integral_value(rounding=ROUND_FLOOR))


def _first(labels: Mapping[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = labels.get(key)
        if value:
            return str(value)
    return ""


def node_status(node: Mapping[str, Any]) -> tuple[str, str]:
    """(normalized status, raw word): Ready -> running, being deleted -> terminated, else unknown."""
    meta = node.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "terminated", "Terminating"
    for cond in (node.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return "running", "Ready"
            return "unknown", "NotReady" if cond.get("status") == "False" else "Unknown"
    return "unknown", "NoReadyCondition"


def _address(status: Mapping[str, Any], kind: str) -> str:
    for addr in status.get("addresses") or []:
        if isinstance(addr, Mapping) and addr.get("type") == kind and ":" not in str(addr.get("address", "")):
            return str(addr.get("address", ""))
    return ""


def node_to_instance(
    node: Mapping[str, Any],
    *,
    provider: str,
    account: str,
    prices: Mapping[str, Decimal] | None = None,
    currency: str = "USD",
    default_zone: str = "",
    extra_labels: Mapping[str, str] | None = None,
    keep_label_prefixes: tuple[str, ...] = (),
) -> Instance:
    """One Node as an ``Instance``: the node name is the id and the host (it links to DCGM rows)."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    capacity: Mapping[str, Any] = status.get("capacity") or {}
    name = str(meta.get("name", ""))
    gpus = 0
    for resource in GPU_RESOURCES:
        count = _int_floor(parse_quantity(capacity.get(resource)))
        if count:
            gpus = count
            break
    memory = parse_quantity(capacity.get("memory"))
    instance_type = _first(labels, INSTANCE_TYPE_LABELS)
    norm, raw = node_status(node)
    out_labels: dict[str, str] = {"status_raw": raw}
    if meta.get("uid"):
        out_labels["uid"] = str(meta["uid"])
    if spec.get("providerID"):
        out_labels["provider_id"] = str(spec["providerID"])
    if spec.get("unschedulable"):
        out_labels["unschedulable"] = "true"
    for key, value in labels.items():
        if key.startswith(keep_label_prefixes) and keep_label_prefixes:
            out_labels[key] = str(value)
    out_labels.update(extra_labels or {})
    price = (prices or {}).get(instance_type) if instance_type else None
    return Instance(
        provider=provider,
        account=account,
        instance_id=name,
        name=name,
        region=_first(labels, REGION_LABELS),
        zone=_first(labels, ZONE_LABELS) or default_zone,
        instance_type=instance_type,
        status=norm,
        gpu_model=_first(labels, GPU_PRODUCT_LABELS),
        gpu_count=gpus,
        vcpus=_int_floor(parse_quantity(capacity.get("cpu"))),
        memory_mib=None if memory is None else _int_floor(memory / _MIB),
        hourly_price=price,
        currency=currency,
        price_source=PriceSource.CONFIG if price is not None else PriceSource.NONE,
        created_at=parse_time(meta.get("creationTimestamp")),
        host=name,
        ip=_address(status, "InternalIP") or _address(status, "ExternalIP"),
        labels=out_labels,
    )


async def list_nodes(
    client: ApiClient, *, limit: int = 500, label_selector: str = ""
) -> list[dict[str, Any]]:
    """All nodes, ``limit`` per request; a 410 (continue token expired) restarts the list once."""
    params: dict[str, str | int] = {"labelSelector": label_selector} if label_selector else {}
    try:
        items = await paginate_continue(client, NODES_PATH, limit=limit, params=params)
    except ApiError as exc:
        if exc.status != 410:
            raise
        log.info("kubernetes_list_restarted", provider=client.provider, reason=str(exc))
        client.clear_cache()  # cached pages belong to the expired snapshot
        items = await paginate_continue(client, NODES_PATH, limit=limit, params=params)
    return [n for n in items if isinstance(n, dict)]
