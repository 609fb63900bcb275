"""The provider adapter contract: what every cloud/platform API adapter implements and inherits.

An adapter turns one account's provider API into ``Instance``/``BillingLine``/``PriceEntry`` rows.
The base class owns everything that is not provider-specific (reading common ``api:`` settings,
the authenticated ``ApiClient``, config checks with ``<dotted.path>: message`` errors, the default
connection test) so that an adapter is mostly field mapping.
"""

from __future__ import annotations

import abc
import hashlib
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

import aiohttp

from multicloud_collector.config.fields import did_you_mean, type_name, url_problem
from multicloud_collector.config.model import AccountConfig
from multicloud_collector.config.problems import Problem
from multicloud_collector.config.units import parse_duration
from multicloud_collector.providers.http import ApiClient, ApiError
from multicloud_collector.providers.records import (
    BillingKind,
    BillingLine,
    CheckResult,
    Instance,
    PriceEntry,
)
from multicloud_collector.secrets import Secret

# Settings every adapter understands (besides its own ``api_keys``).
COMMON_API_KEYS: frozenset[str] = frozenset(
    {
        "base_url",
        "timeout",
        "cache_ttl",
        "max_tries",
        "max_retry_wait",
        "inventory_interval",
        "billing_interval",
        "enabled",
    }
)
DURATION_KEYS = ("timeout", "cache_ttl", "max_retry_wait", "inventory_interval", "billing_interval")
DEFAULT_TIMEOUT = 30.0
DEFAULT_CACHE_TTL = 300.0
DEFAULT_MAX_TRIES = 4
DEFAULT_MAX_RETRY_WAIT = 60.0
ESTIMATE_NOTE = "estimate: list price x observed uptime (no billing API)"
_MICRO = Decimal("0.000001")


class ProviderAdapter(abc.ABC):
    """Base of every provider adapter (subclass, set the ClassVars, implement ``instances``).

    ``credential_keys`` lists the ``api:`` keys that may hold the credential; the default
    ``auth_headers`` sends the first one present as ``Authorization: Bearer``.
    """

    name: ClassVar[str]
    display_name: ClassVar[str]
    default_base_url: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset({"inventory"})
    api_keys: ClassVar[frozenset[str]] = frozenset({"token"})
    credential_keys: ClassVar[tuple[str, ...]] = ("token",)
    credential_required: ClassVar[bool] = True
    check_paths: ClassVar[tuple[tuple[str, str], ...]] = ()  # (name, path) probed by ``check``

    def __init__(
        self, account: AccountConfig, session: aiohttp.ClientSession, *, base_url: str | None = None
    ) -> None:
        self.account = account
        self.session = session
        self.api: Mapping[str, object] = account.api
        configured = self.api.get("base_url")
        self.base_url = (
            base_url or (configured if isinstance(configured, str) else "") or self.default_base_url
        ).rstrip("/")
        self.timeout = seconds_setting(self.api.get("timeout"), DEFAULT_TIMEOUT)
        self.cache_ttl = seconds_setting(self.api.get("cache_ttl"), DEFAULT_CACHE_TTL)
        self.client = ApiClient(
            session,
            self.base_url,
            provider=self.name,
            headers=self.auth_headers(),
            timeout=self.timeout,
            max_tries=_int(self.api.get("max_tries"), DEFAULT_MAX_TRIES),
            cache_ttl=self.cache_ttl,
            max_retry_wait=seconds_setting(self.api.get("max_retry_wait"), DEFAULT_MAX_RETRY_WAIT),
        )

    # ---- configuration ----------------------------------------------------------------------------

    @classmethod
    def validate_api_config(cls, api: Mapping[str, object], path: str) -> list[Problem]:
        """Problems with an account's ``api:`` mapping at ``path`` (e.g. ``accounts[2].api``).

        Subclasses extend: ``problems = super().validate_api_config(api, path)`` then their checks.
        """
        problems: list[Problem] = []
        known = COMMON_API_KEYS | cls.api_keys | frozenset(cls.credential_keys)
        for key in api:
            if key not in known:
                problems.append(Problem(f"{path}.{key}", "unknown key" + did_you_mean(key, sorted(known))))
        base_url = api.get("base_url")
        if base_url is not None:
            if not isinstance(base_url, str):
                problems.append(Problem(f"{path}.base_url", f"expected a string, got {type_name(base_url)}"))
            elif (why := url_problem(base_url)) is not None:
                problems.append(Problem(f"{path}.base_url", why))
        for key in DURATION_KEYS:
            value = api.get(key)
            if value is None:
                continue
            try:
                seconds = parse_duration(value)  # type: ignore[arg-type]
            except (ValueError, TypeError) as exc:
                problems.append(Problem(f"{path}.{key}", str(exc)))
                continue
            if seconds <= 0 and key != "cache_ttl":
                problems.append(Problem(f"{path}.{key}", "must be greater than 0"))
        tries = api.get("max_tries")
        if tries is not None and (isinstance(tries, bool) or not isinstance(tries, int) or tries < 1):
            problems.append(Problem(f"{path}.max_tries", "must be an integer >= 1"))
        if cls.credential_required and cls.credential_keys:
            problems += require_credential(api, path, cls.credential_keys)
        return problems

    def credential(self) -> str:
        """The revealed credential (first of ``credential_keys`` present), or ""."""
        for key in self.credential_keys:
            value = self.api.get(key)
            if value:
                return value.reveal() if isinstance(value, Secret) else str(value)
        return ""

    def auth_headers(self) -> Mapping[str, str | Secret]:
        """Headers sent with every call; values stay ``Secret`` until they reach the wire."""
        token = self.credential()
        return {"Authorization": Secret(f"Bearer {token}")} if token else {}

    def setting(self, key: str, default: str = "") -> str:
        """A plain string ``api:`` setting (not a secret)."""
        value = self.api.get(key)
        return default if value is None else str(value)

    # ---- collection -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def instances(self) -> list[Instance]:
        """Every instance of the account, across all pages."""

    async def billing(self) -> list[BillingLine]:
        """Money lines (balance, pending, invoice items, estimates). Default: none."""
        return []

    async def prices(self) -> list[PriceEntry]:
        """Catalog prices. Default: none."""
        return []

    async def check(self) -> list[CheckResult]:
        """Probe ``check_paths`` (uncached) and report each: ok, status, latency, reason on failure."""
        results: list[CheckResult] = []
        for name, path in self.check_paths:
            results.append(await probe(self.client, name, path))
        return results

    async def close(self) -> None:
        """Release adapter resources (the session is shared and closed by its owner)."""
        self.client.clear_cache()

    # ---- helpers for subclasses ---------------------------------------------------------------------

    def instance(self, instance_id: str, name: str, **fields: object) -> Instance:
        """An ``Instance`` with this adapter's provider and account filled in."""
        return Instance(self.name, self.account.id, instance_id, name, **fields)  # type: ignore[arg-type]

    async def month_to_date_estimates(self, now: datetime | None = None) -> list[BillingLine]:
        """List price x time running since the month began: billing for providers without a money API."""
        now = now or datetime.now(UTC)
        return estimate_lines(
            await self.instances(),
            provider=self.name,
            account=self.account.id,
            now=now,
            since=month_start(now),
        )

    def billing_line(
        self,
        line_id: str,
        kind: BillingKind,
        start: datetime,
        end: datetime,
        amount: Decimal,
        description: str,
        resource_id: str = "",
        *,
        currency: str = "USD",
        note: str = "",
    ) -> BillingLine:
        """A ``BillingLine`` with this adapter's provider and account filled in."""
        return BillingLine(
            self.name,
            self.account.id,
            line_id,
            kind,
            start,
            end,
            amount,
            currency,
            description,
            resource_id,
            note,
        )


async def probe(client: ApiClient, name: str, path: str) -> CheckResult:
    """GET ``path`` once without the cache; an ``ApiError`` becomes a failed result with its reason."""
    started = time.perf_counter()
    try:
        await client.get_json(path, cache=False)
    except ApiError as exc:
        ms = (time.perf_counter() - started) * 1000
        return CheckResult(name, False, exc.status, round(ms, 1), str(exc))
    ms = (time.perf_counter() - started) * 1000
    return CheckResult(name, True, 200, round(ms, 1), "ok")


def require_credential(api: Mapping[str, object], path: str, keys: Iterable[str]) -> list[Problem]:
    """``<path>.<key>: required`` unless one of ``keys`` holds a non-empty value."""
    keys = tuple(keys)
    if any(api.get(k) for k in keys):
        return []
    alternatives = " or ".join(f"{k!r}" for k in keys[1:])
    hint = f" (or {alternatives})" if alternatives else ""
    return [Problem(f"{path}.{keys[0]}", f"required{hint}; use ${{ENV_VAR}} or {keys[0]}_file")]


def estimate_lines(
    instances: Iterable[Instance],
    *,
    provider: str,
    account: str,
    now: datetime,
    since: datetime,
    uptime: Mapping[str, float] | None = None,
) -> list[BillingLine]:
    """ESTIMATE lines for providers without a money API: hourly list price x uptime in [since, now].

    Uptime is ``uptime[instance_id]`` seconds when given (observed), else the time since
    ``max(since, created_at)`` for running instances and nothing for others. ``line_id`` depends on
    instance and ``since`` only, so each collection restates (and replaces) the same period's line.
    """
    lines: list[BillingLine] = []
    window = max(0.0, (now - since).total_seconds())
    for inst in instances:
        if inst.hourly_price is None:
            continue
        if uptime is not None:
            seconds = min(max(0.0, uptime.get(inst.instance_id, 0.0)), window)
        elif inst.status == "running":
            start = max(since, inst.created_at) if inst.created_at is not None else since
            seconds = max(0.0, (now - start).total_seconds())
        else:
            seconds = 0.0
        hours = Decimal(str(seconds)) / Decimal(3600)
        amount = (inst.hourly_price * hours).quantize(_MICRO)
        lines.append(
            BillingLine(
                provider=provider,
                account=account,
                line_id=f"estimate:{inst.instance_id}:{since.isoformat()}",
                kind=BillingKind.ESTIMATE,
                period_start=since,
                period_end=now,
                amount=amount,
                currency=inst.currency,
                description=f"{inst.name} ({inst.instance_type}) {hours.quantize(_MICRO)} h",
                resource_id=inst.instance_id,
                note=ESTIMATE_NOTE,
            )
        )
    return lines


def seconds_setting(value: object, default: float) -> float:
    """A duration ``api:`` setting in seconds (``5m``, 300), or ``default`` when unset or unusable."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return default
    try:
        return parse_duration(value)
    except ValueError:
        return default


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default


def stable_line_id(prefix: str, *parts: object) -> str:
    """``prefix:<12 hex>`` from ``parts``: the same billing line gets the same id on every read.

    For providers whose line items carry no id: restated lines then replace (not duplicate) rows.
    """
    digest = hashlib.sha1("\x1f".join(str(p) for p in parts).encode(), usedforsecurity=False).hexdigest()
    return f"{prefix}:{digest[:12]}"


def month_start(now: datetime) -> datetime:
    """Midnight UTC of the first day of ``now``'s month."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
