"""Resolve references in the raw config: ``${VAR}``, ``${VAR:-default}``, ``*_file`` and secrets.

Credentials belong in the environment or in files (Kubernetes/systemd secrets), never in the
YAML. This pass swaps references for values and wraps every secret-looking value in ``Secret``
so that it cannot be printed afterwards. Problems name the variable or file and the config path,
never a value. In disabled accounts/providers a missing variable is only a warning: the entry
is not used, and example accounts must not break a fresh install.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multicloud_collector.config.overrides import parse_bool_word
from multicloud_collector.config.problems import Problem, Severity
from multicloud_collector.config.yamlsrc import join_path
from multicloud_collector.secrets import Secret

_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}")
_INNER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_SECRET_KEY = re.compile(r"(?:^|[_-])(?:token|key|password|passwd|secret)$|^(?:apikey|api_key|secret)$")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"})
# Mappings whose keys are user data, not setting names (a label "key: x" is not a credential).
_FREEFORM_PARENTS = frozenset({"labels", "exporter_ports"})
MAX_SECRET_FILE_BYTES = 64 * 1024
INLINE_SECRET_HINT = "inline secret; put secrets in the environment or a file (${VAR} or <key>_file)"


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.lower()))


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or is_secret_key(lowered)


@dataclass(slots=True)
class ResolveContext:
    env: Mapping[str, str]
    base_dir: Path
    lines: Mapping[str, int]
    problems: list[Problem] = field(default_factory=list)
    # Paths whose value could not be resolved: later checks skip them (already reported once).
    unresolved: set[str] = field(default_factory=set)
    # Paths whose value came (partly) from the environment: not an inline secret.
    referenced: set[str] = field(default_factory=set)

    def report(self, path: str, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(path, message, severity, self.lines.get(path)))


def _is_off(value: object) -> bool:
    return value is False or (isinstance(value, str) and parse_bool_word(value) is False)


def resolve_references(data: dict[str, Any], ctx: ResolveContext) -> dict[str, Any]:
    """Return a copy of ``data`` with references resolved and secrets wrapped."""
    providers = data.get("providers")
    disabled: set[str] = set()
    if isinstance(providers, dict):
        disabled = {str(n) for n, s in providers.items() if isinstance(s, dict) and _is_off(s.get("enabled"))}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "accounts" and isinstance(value, list):
            items = []
            for i, acct in enumerate(value):
                inactive = isinstance(acct, dict) and (
                    _is_off(acct.get("enabled")) or str(acct.get("provider")) in disabled
                )
                items.append(_walk(acct, f"accounts[{i}]", "", inactive, ctx))
            out[key] = items
        elif key == "providers" and isinstance(value, dict):
            out[key] = {n: _walk(s, f"providers.{n}", "", str(n) in disabled, ctx) for n, s in value.items()}
        else:
            out[key] = _walk(value, key, key, False, ctx)
    return out


def _walk(value: Any, path: str, key: str, inactive: bool, ctx: ResolveContext, parent: str = "") -> Any:
    if isinstance(value, dict):
        return _walk_mapping(value, path, key, inactive, ctx)
    if isinstance(value, list):
        return [_walk(v, join_path(path, i), key, inactive, ctx) for i, v in enumerate(value)]
    secret = parent not in _FREEFORM_PARENTS and (
        is_secret_header(key) if parent == "headers" else is_secret_key(key)
    )
    if isinstance(value, str):
        text, referenced = _interpolate(value, path, inactive, ctx)
        if not secret:
            return text
        if not referenced and text:
            ctx.report(path, INLINE_SECRET_HINT, "warning")
        return Secret(text)
    if secret and value is not None and not isinstance(value, bool):
        ctx.report(path, INLINE_SECRET_HINT, "warning")
        return Secret(str(value))
    return value


def _walk_mapping(value: dict[str, Any], path: str, key: str, inactive: bool, ctx: ResolveContext) -> Any:
    out: dict[str, Any] = {}
    for k, v in value.items():
        child = join_path(path, k)
        base = k[: -len("_file")] if k.endswith("_file") else ""
        if base and key not in _FREEFORM_PARENTS and is_secret_key(base):
            if base in value:
                ctx.report(child, f"give either {base!r} or {k!r}, not both")
                continue
            out[base] = _read_secret_file(v, child, join_path(path, base), inactive, ctx)
            continue
        out[k] = _walk(v, child, k, inactive, ctx, parent=key)
    return out


def _interpolate(text: str, path: str, inactive: bool, ctx: ResolveContext) -> tuple[str, bool]:
    """Expand ``${VAR}``/``${VAR:-default}``; ``$$`` is a literal ``$``. Returns (text, had_reference)."""
    referenced = False

    def repl(m: re.Match[str]) -> str:
        nonlocal referenced
        if m.group(0) == "$$":
            return "$"
        inner = _INNER.fullmatch(m.group(1))
        if inner is None:
            ctx.report(path, f"invalid reference {m.group(0)!r} (use ${{VAR}} or ${{VAR:-default}})")
            ctx.unresolved.add(path)
            return ""
        referenced = True
        name, default = inner.group(1), inner.group(2)
        found = ctx.env.get(name)
        if default is not None and not found:
            return default
        if found is None:
            _missing(path, f"environment variable {name} is not set", inactive, ctx)
            return ""
        return found

    if "$" not in text:
        return text, False
    result = _REFERENCE.sub(repl, text)
    if referenced:
        ctx.referenced.add(path)
    return result, referenced


def _missing(path: str, message: str, inactive: bool, ctx: ResolveContext) -> None:
    ctx.unresolved.add(path)
    if inactive:
        ctx.report(path, f"{message} (ignored: disabled)", "warning")
    else:
        ctx.report(path, message)


def _read_secret_file(raw: Any, path: str, target: str, inactive: bool, ctx: ResolveContext) -> Secret | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        ctx.report(path, "must be a file path")
        ctx.unresolved.add(target)
        return None
    name, _ = _interpolate(raw, path, inactive, ctx)
    if path in ctx.unresolved:
        ctx.unresolved.add(target)
        return None
    file = Path(name).expanduser()
    if not file.is_absolute():
        file = ctx.base_dir / file
    try:
        if file.stat().st_size > MAX_SECRET_FILE_BYTES:
            ctx.report(
                path, f"file {file} is larger than {MAX_SECRET_FILE_BYTES // 1024}KiB; not a secret file?"
            )
            ctx.unresolved.add(target)
            return None
        content = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        ctx.unresolved.add(target)
        _missing(path, f"cannot read file {file}: {reason}", inactive, ctx)
        return None
    content = content.rstrip("\r\n")
    if not content:
        ctx.report(path, f"file {file} is empty", "warning")
    return Secret(content)
