"""``MCC_*`` environment overrides applied to the raw YAML before anything else.

Containers and CI toggle providers/accounts and move the data directory without editing the
file. Overrides run first so that "disabled" is known when deciding whether a missing
``${VAR}`` is an error (enabled) or only a warning (disabled).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from multicloud_collector.config.problems import Problem

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_PROVIDER_VAR = re.compile(r"MCC_PROVIDER_(.+)_ENABLED")
_ACCOUNT_VAR = re.compile(r"MCC_ACCOUNT_(.+)_ENABLED")


def env_token(name: str) -> str:
    """``my-cloud.eu`` -> ``MY_CLOUD_EU``: the part of a variable name that identifies an entry."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def provider_enabled_var(name: str) -> str:
    return f"MCC_PROVIDER_{env_token(name)}_ENABLED"


def account_enabled_var(account_id: str) -> str:
    return f"MCC_ACCOUNT_{env_token(account_id)}_ENABLED"


def parse_bool_word(text: str) -> bool | None:
    """``true/false/1/0/yes/no/on/off`` (any case) -> bool; anything else -> None."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _escape(value: str) -> str:
    # Values from overrides are final: keep "${" in them from being interpolated later.
    return value.replace("$", "$$")


def _section(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.setdefault(key, {})
    if value is None:
        value = data[key] = {}
    return value if isinstance(value, dict) else None


def apply_env_overrides(data: dict[str, Any], env: Mapping[str, str], problems: list[Problem]) -> None:
    """Mutate ``data`` (the raw YAML mapping) according to ``MCC_*`` variables in ``env``."""
    providers = data.get("providers")
    seen_vars: set[str] = set()
    if isinstance(providers, dict):
        for name, spec in providers.items():
            var = provider_enabled_var(str(name))
            seen_vars.add(var)
            if isinstance(spec, dict):
                _set_enabled(spec, var, env, problems)
    accounts = data.get("accounts")
    if isinstance(accounts, list):
        for acct in accounts:
            if isinstance(acct, dict) and "id" in acct:
                var = account_enabled_var(str(acct["id"]))
                seen_vars.add(var)
                _set_enabled(acct, var, env, problems)
    for var in sorted(env):
        if (_PROVIDER_VAR.fullmatch(var) or _ACCOUNT_VAR.fullmatch(var)) and var not in seen_vars:
            what = "provider" if var.startswith("MCC_PROVIDER_") else "account"
            problems.append(Problem(var, f"matches no {what} in the config; ignored", "warning"))

    sink_kind = env.get("MCC_SINK_KIND", "").strip()
    listen = env.get("MCC_LISTEN", "").strip()
    data_dir = env.get("MCC_DATA_DIR", "").strip().rstrip("/")
    if sink_kind and (sink := _section(data, "sink")) is not None:
        sink["kind"] = _escape(sink_kind)
    if listen and (collector := _section(data, "collector")) is not None:
        collector["listen"] = _escape(listen)
    if data_dir:
        if (collector := _section(data, "collector")) is not None:
            collector["state_dir"] = _escape(f"{data_dir}/state")
        sink = _section(data, "sink")
        if sink is not None and (embedded := _section(sink, "embedded")) is not None:
            embedded["path"] = _escape(f"{data_dir}/chdb")


def _set_enabled(entry: dict[str, Any], var: str, env: Mapping[str, str], problems: list[Problem]) -> None:
    raw = env.get(var)
    if raw is None or raw.strip() == "":
        return
    value = parse_bool_word(raw)
    if value is None:
        problems.append(Problem(var, f"invalid boolean {raw!r} (use true/false/1/0/yes/no)"))
        return
    entry["enabled"] = value
