"""``mcc inventory``, ``mcc billing`` and ``mcc providers test``: one account's provider API, now.

These talk to the provider directly (not through the store), so they work before the daemon ever
ran and show exactly what the API says, or exactly why it refused ("401 from /v2/account: token
rejected"). Exit codes: 0 ok, 1 the API failed, 2 bad config / unknown account.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any, TextIO, TypeVar

import orjson

from multicloud_collector.config import Config
from multicloud_collector.providers.base import ProviderAdapter
from multicloud_collector.providers.collector import UnknownAdapterError, open_adapter, wants_api
from multicloud_collector.providers.http import ApiError
from multicloud_collector.providers.records import BillingLine, CheckResult, Instance

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

T = TypeVar("T")


class AccountError(Exception):
    """The account cannot be used for API calls (unknown, no api block, no adapter)."""


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError


def to_json(rows: Sequence[object]) -> str:
    data = [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in rows]  # type: ignore[arg-type]
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_INDENT_2).decode() + "\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None or c == "" else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in cells
    )


async def with_adapter(config: Config, account_id: str, fn: Callable[[ProviderAdapter], Awaitable[T]]) -> T:
    """Open the account's adapter on a fresh session, run ``fn``, close everything."""
    from multicloud_collector.plugins.manager import Registry, get_plugin_manager
    from multicloud_collector.runtime import make_session

    account = config.account(account_id)
    if account is None:
        known = ", ".join(a.id for a in config.accounts) or "none"
        raise AccountError(f"unknown account {account_id!r} (accounts: {known})")
    if not wants_api(account):
        raise AccountError(f"account {account_id!r} has no api: block (provider API collection is off)")
    adapters = Registry(get_plugin_manager()).adapters
    session = make_session(config)
    try:
        try:
            adapter = open_adapter(config, account, adapters, session)
        except UnknownAdapterError as exc:
            raise AccountError(f"account {account_id!r}: {exc}") from None
        try:
            return await fn(adapter)
        finally:
            await adapter.close()
    finally:
        await session.close()


def _run(
    config: Config, account_id: str, fn: Callable[[ProviderAdapter], Awaitable[T]], err: TextIO
) -> T | int:
    try:
        return asyncio.run(with_adapter(config, account_id, fn))
    except AccountError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_CONFIG
    except ApiError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED


def _money(v: Decimal | None, currency: str = "") -> str:
    return "-" if v is None else f"{v.normalize():f} {currency}".strip()


def inventory(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async def fetch(a: ProviderAdapter) -> list[Instance]:
        return await a.instances()

    result = _run(config, args.account, fetch, err)
    if isinstance(result, int):
        return result
    if args.json:
        out.write(to_json(result))
        return EXIT_OK
    rows = [
        (
            i.instance_id,
            i.name,
            i.region,
            i.instance_type,
            i.status,
            f"{i.gpu_count}x {i.gpu_model}" if i.gpu_count else "",
            _money(i.hourly_price, i.currency) + "/h" if i.hourly_price is not None else "",
            str(i.price_source),
            i.host,
        )
        for i in result
    ]
    out.write(table(("ID", "NAME", "REGION", "TYPE", "STATUS", "GPUS", "PRICE", "SOURCE", "HOST"), rows))
    out.write(f"{len(result)} instance(s)\n")
    return EXIT_OK


def billing(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async def fetch(a: ProviderAdapter) -> list[BillingLine]:
        return await a.billing()

    result = _run(config, args.account, fetch, err)
    if isinstance(result, int):
        return result
    if args.json:
        out.write(to_json(result))
        return EXIT_OK
    rows = [
        (
            b.kind,
            f"{b.period_start:%Y-%m-%d}..{b.period_end:%Y-%m-%d}",
            _money(b.amount, b.currency),
            b.description,
            b.note,
        )
        for b in result
    ]
    out.write(table(("KIND", "PERIOD", "AMOUNT", "DESCRIPTION", "NOTE"), rows))
    totals: dict[tuple[str, str], Decimal] = {}
    for b in result:
        totals[(str(b.kind), b.currency)] = totals.get((str(b.kind), b.currency), Decimal(0)) + b.amount
    for (kind, currency), total in sorted(totals.items()):
        out.write(f"total {kind}: {_money(total, currency)}\n")
    return EXIT_OK


def providers_test(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async def probe(a: ProviderAdapter) -> tuple[str, str, list[CheckResult]]:
        return a.display_name, a.base_url, await a.check()

    result = _run(config, args.account, probe, err)
    if isinstance(result, int):
        return result
    name, base_url, checks = result
    failed = [c for c in checks if not c.ok]
    if args.json:
        payload: dict[str, Any] = {
            "account": args.account,
            "provider": name,
            "base_url": base_url,
            "ok": not failed,
            "checks": [dataclasses.asdict(c) for c in checks],
        }
        out.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(f"{name} at {base_url} (account {args.account})\n")
        rows = [
            (
                "ok" if c.ok else "FAIL",
                c.name,
                c.status,
                "" if c.latency_ms is None else f"{c.latency_ms:.0f} ms",
                c.detail,
            )
            for c in checks
        ]
        out.write(table(("RESULT", "CHECK", "STATUS", "LATENCY", "DETAIL"), rows))
    if failed:
        print(f"error: {failed[0].detail}", file=err)
        return EXIT_FAILED
    return EXIT_OK
