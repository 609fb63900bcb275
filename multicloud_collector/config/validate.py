"""Checks across entries (providers vs accounts, duplicates, kinds) after each section is built.

Per-field checks (types, units, URLs, unknown keys) happen while building sections; this module
looks at the whole picture. Everything becomes a ``Problem``; nothing stops at the first one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from multicloud_collector.config.build_accounts import BuiltAccounts
from multicloud_collector.config.fields import Checker, did_you_mean
from multicloud_collector.config.model import BUILTIN_EXPORTER_KINDS, ProviderSpec
from multicloud_collector.config.problems import Problem
from multicloud_collector.secrets import safe_url

__all__ = ["Problem", "check_accounts", "check_providers", "implicit_providers"]


def implicit_providers(chk: Checker, built: BuiltAccounts) -> dict[str, ProviderSpec]:
    """Without a ``providers:`` section, every provider an account names is a plain Prometheus one."""
    names = sorted({a.provider for a in built.accounts if a.provider})
    if names:
        chk.report(
            "providers",
            f"section missing; using default specs for {', '.join(names)} (add them to the catalog)",
            "warning",
        )
    return {n: ProviderSpec(name=n) for n in names}


def check_providers(chk: Checker, providers: dict[str, ProviderSpec]) -> None:
    for name, spec in providers.items():
        path = f"providers.{name}"
        if "prometheus" not in spec.capabilities and spec.adapter is None and spec.enabled:
            chk.report(path, "no 'prometheus' capability and no adapter: nothing can be collected", "warning")


def check_accounts(
    chk: Checker,
    built: BuiltAccounts,
    providers: dict[str, ProviderSpec],
    known_kinds: Iterable[str] | None = None,
) -> None:
    kinds = set(BUILTIN_EXPORTER_KINDS if known_kinds is None else known_kinds)
    first_seen: dict[str, str] = {}
    for account, path, exporter_paths in zip(built.accounts, built.paths, built.exporter_paths, strict=True):
        if account.id:
            if account.id in first_seen:
                chk.report(
                    f"{path}.id", f"duplicate account id {account.id!r} (also {first_seen[account.id]})"
                )
            else:
                first_seen[account.id] = path
        spec = providers.get(account.provider)
        if account.provider and spec is None:
            chk.report(
                f"{path}.provider",
                f"unknown provider {account.provider!r}" + did_you_mean(account.provider, providers),
            )
        if account.prometheus is None and not account.exporters and not account.api:
            chk.report(path, "nothing to collect (no prometheus, exporters or api)", "warning")
        if account.api and account.enabled and spec is not None and spec.enabled and spec.adapter:
            check_api(chk, account.api, spec.adapter, f"{path}.api")
        urls: dict[str, str] = {}
        for exporter, epath in zip(account.exporters, exporter_paths, strict=True):
            if exporter.kind and exporter.kind not in kinds:
                chk.report(
                    f"{epath}.kind",
                    f"unknown exporter kind {exporter.kind!r}; known: {', '.join(sorted(kinds))}"
                    + did_you_mean(exporter.kind, kinds),
                )
            if not exporter.url:
                continue
            if exporter.url in urls:
                chk.report(
                    f"{epath}.url",
                    f"duplicate exporter URL {safe_url(exporter.url)!r} (also {urls[exporter.url]})",
                )
            else:
                urls[exporter.url] = f"{epath}.url"


def check_api(chk: Checker, api: Mapping[str, object], adapter: str, path: str) -> None:
    """An account's ``api:`` block, checked by its provider's adapter (``validate_api_config``).

    Skipped when a reference in the block could not be resolved (already reported) and when the
    adapter is not installed (the collector reports that account as failing at run time).
    """
    if api.get("enabled", True) is False or any(u.startswith(path) for u in chk.unresolved):
        return
    adapters = _installed_adapters()
    cls = adapters.get(adapter) if adapters is not None else None
    validate = getattr(cls, "validate_api_config", None)
    if validate is None:
        return
    for problem in validate(api, path):
        chk.report(problem.path, problem.message, problem.severity)


def _installed_adapters() -> Mapping[str, type] | None:
    """Adapters of built-in and installed plugins; None when plugins cannot load (reported elsewhere)."""
    from multicloud_collector.plugins.manager import PluginError, Registry, get_plugin_manager

    try:
        return Registry(get_plugin_manager()).adapters
    except PluginError:
        return None
