"""Hourly prices given in config (``api.prices: {instance_type: hourly}``), for APIs that have none.

Kubernetes, CoreWeave, Docker and OVHcloud return no usable per-instance price, so an operator may
state list prices in providers.yaml; they become ``price_source: config`` and feed the estimates.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from multicloud_collector.config.fields import type_name
from multicloud_collector.config.problems import Problem
from multicloud_collector.providers.money import parse_money
from multicloud_collector.providers.records import PriceEntry

CURRENCY_LEN = 3


def check_prices(api: Mapping[str, object], path: str) -> list[Problem]:
    """``<path>.prices.<type>: ...`` problems for a malformed price table, plus the currency."""
    problems: list[Problem] = []
    raw = api.get("prices")
    if raw is not None:
        if not isinstance(raw, Mapping):
            problems.append(
                Problem(
                    f"{path}.prices",
                    f"expected a mapping of instance type to hourly price, got {type_name(raw)}",
                )
            )
        else:
            for key, value in raw.items():
                amount = parse_money(value) if isinstance(value, str | int | float) else None
                if amount is None:
                    problems.append(
                        Problem(f"{path}.prices.{key}", f"expected an hourly price (number), got {value!r}")
                    )
                elif amount < 0:
                    problems.append(Problem(f"{path}.prices.{key}", "must not be negative"))
    currency = api.get("currency")
    if currency is not None and (
        not isinstance(currency, str) or len(currency) != CURRENCY_LEN or not currency.isalpha()
    ):
        problems.append(
            Problem(f"{path}.currency", f"expected a 3-letter ISO 4217 code such as USD, got {currency!r}")
        )
    return problems


def config_prices(api: Mapping[str, object]) -> dict[str, Decimal]:
    """The valid entries of ``api.prices`` (validation reports the others)."""
    raw = api.get("prices")
    out: dict[str, Decimal] = {}
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            amount = parse_money(value) if isinstance(value, str | int | float) else None
            if amount is not None and amount >= 0:
                out[str(key)] = amount
    return out


def config_currency(api: Mapping[str, object], default: str = "USD") -> str:
    value = api.get("currency")
    return value.upper() if isinstance(value, str) and len(value) == CURRENCY_LEN else default


def price_entries(provider: str, prices: Mapping[str, Decimal], currency: str) -> list[PriceEntry]:
    return [
        PriceEntry(provider=provider, instance_type=k, hourly_price=v, currency=currency)
        for k, v in sorted(prices.items())
    ]
