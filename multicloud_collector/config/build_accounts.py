"""Build ``accounts`` (with their Prometheus and exporter targets) from resolved YAML."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from multicloud_collector.config.fields import Checker, Section, type_name
from multicloud_collector.config.model import AccountConfig, ExporterConfig, PrometheusConfig, PromQueryConfig
from multicloud_collector.secrets import Secret

ACCOUNT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
LABEL_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ACCOUNT_KEYS = (
    "id",
    "customer",
    "provider",
    "enabled",
    "interval",
    "scrape_timeout",
    "labels",
    "prometheus",
    "exporters",
    "api",
)
_EXPORTER_KEYS = (
    "url",
    "kind",
    "name",
    "interval",
    "scrape_timeout",
    "labels",
    "headers",
    "bearer_token",
    "enabled",
)
_PROMETHEUS_KEYS = ("url", "queries", "bearer_token", "headers", "scrape_timeout")


@dataclass(slots=True)
class BuiltAccounts:
    """Accounts plus the config path of each (and of each exporter) for later cross-checks."""

    accounts: list[AccountConfig] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    exporter_paths: list[list[str]] = field(default_factory=list)


def build_accounts(chk: Checker, root: Section) -> BuiltAccounts:
    out = BuiltAccounts()
    for path, item in root.items("accounts"):
        if not isinstance(item, dict):
            chk.report(path, f"expected a mapping, got {type_name(item)}")
            continue
        account, exporter_paths = _account(chk, Section(chk, path, item, _ACCOUNT_KEYS))
        out.accounts.append(account)
        out.paths.append(path)
        out.exporter_paths.append(exporter_paths)
    return out


def _labels(chk: Checker, s: Section) -> dict[str, str]:
    labels = s.string_map("labels")
    for name in labels:
        if not LABEL_NAME_PATTERN.fullmatch(name):
            chk.report(f"{s.at('labels')}.{name}", "invalid label name (use letters, digits and '_')")
    return {k: v for k, v in labels.items() if LABEL_NAME_PATTERN.fullmatch(k)}


def _timeout_vs_interval(chk: Checker, s: Section, interval: float | None, timeout: float | None) -> None:
    if interval is not None and timeout is not None and timeout >= interval:
        chk.report(s.at("scrape_timeout"), f"must be less than interval ({s.raw('interval')})")


def _account(chk: Checker, s: Section) -> tuple[AccountConfig, list[str]]:
    account_id = s.string("id", required=True)
    if account_id and not ACCOUNT_ID_PATTERN.fullmatch(account_id):
        chk.report(s.at("id"), f"invalid account id {account_id!r} (use letters, digits, '.', '_', '-', ':')")
    customer = s.string("customer", account_id)
    if not s.has("customer") and account_id:
        chk.report(s.at("customer"), f"not set; using the account id {account_id!r}", "warning")
    interval = s.opt_duration("interval")
    timeout = s.opt_duration("scrape_timeout")
    _timeout_vs_interval(chk, s, interval, timeout)
    exporters: list[ExporterConfig] = []
    exporter_paths: list[str] = []
    for path, item in s.items("exporters"):
        if not isinstance(item, dict):
            chk.report(path, f"expected a mapping with at least 'url', got {type_name(item)}")
            continue
        exporters.append(_exporter(chk, Section(chk, path, item, _EXPORTER_KEYS)))
        exporter_paths.append(path)
    api: dict[str, Any] = {}
    raw_api = s.raw("api")
    if raw_api is not None and not isinstance(raw_api, dict):
        chk.report(s.at("api"), f"expected a mapping, got {type_name(raw_api)}")
    elif raw_api:
        api = raw_api
    account = AccountConfig(
        id=account_id,
        customer=customer,
        provider=s.string("provider", required=True),
        enabled=s.boolean("enabled", True),
        interval=interval,
        scrape_timeout=timeout,
        labels=_labels(chk, s),
        prometheus=_prometheus(chk, s),
        exporters=tuple(exporters),
        api=api,
    )
    return account, exporter_paths


def _exporter(chk: Checker, e: Section) -> ExporterConfig:
    interval = e.opt_duration("interval")
    timeout = e.opt_duration("scrape_timeout")
    _timeout_vs_interval(chk, e, interval, timeout)
    return ExporterConfig(
        url=e.url("url"),
        kind=e.string("kind", "generic", required=e.has("kind")),
        name=e.opt_string("name"),
        interval=interval,
        scrape_timeout=timeout,
        labels=_labels(chk, e),
        headers=e.headers(),
        bearer_token=e.secret("bearer_token"),
        enabled=e.boolean("enabled", True),
    )


def _prometheus(chk: Checker, s: Section) -> PrometheusConfig | None:
    if not s.has("prometheus"):
        return None
    p = s.mapping("prometheus", _PROMETHEUS_KEYS)
    if p is None:
        return None
    queries: list[PromQueryConfig] = []
    seen: dict[str, str] = {}
    for path, item in p.items("queries"):
        if not isinstance(item, dict):
            chk.report(path, f"expected a mapping with 'name' and 'expr', got {type_name(item)}")
            continue
        q = Section(chk, path, item, ("name", "expr"))
        query = PromQueryConfig(name=q.string("name", required=True), expr=q.string("expr", required=True))
        if query.name in seen:
            chk.report(q.at("name"), f"duplicate query name {query.name!r} (also {seen[query.name]})")
        elif query.name:
            seen[query.name] = path
        queries.append(query)
    if not queries:
        chk.report(p.at("queries"), "no queries; nothing will be collected from this Prometheus", "warning")
    token: Secret | None = p.secret("bearer_token")
    return PrometheusConfig(
        url=p.url("url"),
        queries=tuple(queries),
        bearer_token=token,
        headers=p.headers(),
        scrape_timeout=p.opt_duration("scrape_timeout"),
    )
