"""The records every provider adapter produces: one instance shape, one billing-line shape, one price.

Eleven APIs describe machines and money in eleven ways; adapters translate into these frozen,
I/O-free types so storage, the CLI and the cost view never need to know which cloud a row came from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

INSTANCE_STATUSES: frozenset[str] = frozenset({"running", "stopped", "pending", "terminated", "unknown"})


class BillingKind(enum.StrEnum):
    """What a billing line is: a balance, unbilled charges, an invoice line, usage or an estimate."""

    BALANCE = "balance"
    PENDING = "pending"
    INVOICE_ITEM = "invoice_item"
    USAGE = "usage"
    ESTIMATE = "estimate"


class PriceSource(enum.StrEnum):
    """Where an instance's hourly price came from (so a user knows how far to trust it)."""

    API = "api"
    CATALOG = "catalog"
    CONFIG = "config"
    NONE = ""


@dataclass(frozen=True, slots=True)
class Instance:
    """One machine (VM, bare metal, pod, node or container) as seen by a provider API.

    ``status`` is normalized to one of ``INSTANCE_STATUSES``; the provider's own word is kept in
    ``labels["status_raw"]``. ``host`` is the name used to link GPU rows (``gpu_samples.host``).
    """

    provider: str
    account: str
    instance_id: str
    name: str
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    status: str = ""
    gpu_model: str = ""
    gpu_count: int = 0
    vcpus: int | None = None
    memory_mib: int | None = None
    hourly_price: Decimal | None = None
    currency: str = "USD"
    price_source: PriceSource = PriceSource.NONE
    created_at: datetime | None = None
    host: str = ""
    ip: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BillingLine:
    """One money amount with its period. ``line_id`` is stable across restatements of the same line."""

    provider: str
    account: str
    line_id: str
    kind: BillingKind
    period_start: datetime
    period_end: datetime
    amount: Decimal
    currency: str = "USD"
    description: str = ""
    resource_id: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """A catalog price for an instance type (optionally per region)."""

    provider: str
    instance_type: str
    region: str = ""
    hourly_price: Decimal | None = None
    monthly_price: Decimal | None = None
    currency: str = "USD"
    gpu_model: str = ""
    gpu_count: int = 0
    vcpus: int | None = None
    memory_mib: int | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One probed endpoint for ``mcc providers test``: did it answer, how fast, and if not, why."""

    name: str
    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    detail: str = ""


def normalize_status(raw: str, mapping: Mapping[str, str]) -> str:
    """Map a provider's status word through ``mapping`` (case-insensitive); unknown words give "unknown"."""
    value = mapping.get(raw.strip().lower(), "unknown")
    return value if value in INSTANCE_STATUSES else "unknown"


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """The outcome of one API collection job of one account (a ``provider_metadata`` row).

    ``status`` is "ok", "degraded" (the API failed: auth, outage, rate limit; metrics collection
    goes on) or "error" (the adapter itself failed: a bug or an unusable answer).
    """

    provider: str
    account: str
    customer: str
    adapter: str
    job: str  # "inventory" | "billing"
    status: str
    last_attempt: datetime
    last_success: datetime | None = None
    error: str = ""
    display_name: str = ""
    capabilities: tuple[str, ...] = ()
    base_url: str = ""
    instances: int = 0
    billing_lines: int = 0
    duration_ms: float = 0.0
