"""Provider API adapters: inventory, prices and billing from cloud APIs, next to the metrics.

``records`` (the rows), ``money`` (Decimal/UTC parsing), ``http`` (the shared API client),
``base`` (the adapter contract) and ``collector`` (the collection jobs); one sub-package per
built-in adapter (``vultr``, ``digitalocean``, ...), each registered through its ``plugin`` module.
"""

from multicloud_collector.providers.base import ProviderAdapter, estimate_lines
from multicloud_collector.providers.http import ApiClient, ApiError, ApiStats
from multicloud_collector.providers.money import parse_money, parse_time
from multicloud_collector.providers.records import (
    BillingKind,
    BillingLine,
    CheckResult,
    Instance,
    PriceEntry,
    PriceSource,
)

__all__ = [
    "ApiClient",
    "ApiError",
    "ApiStats",
    "BillingKind",
    "BillingLine",
    "CheckResult",
    "Instance",
    "PriceEntry",
    "PriceSource",
    "ProviderAdapter",
    "estimate_lines",
    "parse_money",
    "parse_time",
]
