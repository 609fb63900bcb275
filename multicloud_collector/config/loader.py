"""Load ``providers.yaml`` into a ``Config``: parse, override, resolve references, build, check.

The order matters: ``MCC_*`` overrides first (they decide what is disabled), then ``${VAR}`` and
``*_file`` resolution (a missing variable in a disabled entry is only a warning), then typed
building and cross-checks. All problems of a file are collected and raised together.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from multicloud_collector.config.build_accounts import build_accounts
from multicloud_collector.config.build_core import build_collector, build_providers, build_sink
from multicloud_collector.config.fields import Checker, Section, type_name
from multicloud_collector.config.model import Config
from multicloud_collector.config.overrides import apply_env_overrides
from multicloud_collector.config.problems import ConfigError, ConfigFileNotFoundError, Problem
from multicloud_collector.config.resolve import ResolveContext, resolve_references
from multicloud_collector.config.validate import check_accounts, check_providers, implicit_providers
from multicloud_collector.config.yamlsrc import parse_yaml

__all__ = ["ConfigError", "Problem", "load_config", "load_config_text", "resolve_config_path"]

DEFAULT_CONFIG = "providers.yaml"
TOP_LEVEL_KEYS = ("collector", "sink", "providers", "accounts")


def resolve_config_path(cli_value: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``-c`` value, else ``$MCC_CONFIG``, else ``./providers.yaml``."""
    if cli_value:
        return Path(cli_value)
    environ = os.environ if env is None else env
    from_env = environ.get("MCC_CONFIG", "").strip()
    return Path(from_env) if from_env else Path(DEFAULT_CONFIG)


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    known_kinds: Iterable[str] | None = None,
) -> Config:
    """Load and validate a config file; raises ``ConfigError`` listing every error found."""
    environ: Mapping[str, str] = os.environ if env is None else env
    file = Path(path) if path is not None else resolve_config_path(None, environ)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileNotFoundError(
            [Problem(str(file), "config file not found (use -c FILE or set MCC_CONFIG)")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError([Problem(str(file), f"cannot read config file: {reason}")]) from None
    return load_config_text(
        text,
        env=environ,
        known_kinds=known_kinds,
        source_name=str(file),
        base_dir=file.parent,
        source_path=file,
    )


def load_config_text(
    text: str,
    env: Mapping[str, str] | None = None,
    known_kinds: Iterable[str] | None = None,
    *,
    source_name: str = "<config>",
    base_dir: str | Path | None = None,
    source_path: Path | None = None,
) -> Config:
    """Load a config from YAML text (tests, demos). Relative ``*_file`` paths use ``base_dir`` (cwd)."""
    environ: Mapping[str, str] = {} if env is None else env
    doc = parse_yaml(text, source_name)
    problems: list[Problem] = list(doc.problems)
    data: Any = {} if doc.data is None else doc.data
    if doc.problems and doc.data is None:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError([Problem(source_name, f"top level must be a mapping, got {type_name(data)}")])

    apply_env_overrides(data, environ, problems)
    ctx = ResolveContext(
        env=environ, base_dir=Path(base_dir) if base_dir is not None else Path.cwd(), lines=doc.lines
    )
    resolved = resolve_references(data, ctx)
    problems.extend(ctx.problems)

    chk = Checker(lines=doc.lines, unresolved=ctx.unresolved, referenced=ctx.referenced, problems=problems)
    root = Section(chk, "", resolved, TOP_LEVEL_KEYS)
    collector = build_collector(chk, root)
    sink = build_sink(chk, root)
    providers = build_providers(chk, root)
    built = build_accounts(chk, root)
    if "providers" not in data:
        providers = implicit_providers(chk, built)
    check_providers(chk, providers)
    check_accounts(chk, built, providers, known_kinds)

    ordered = sorted(chk.problems, key=lambda p: p.line or 0)
    errors = [p for p in ordered if p.is_error]
    warnings = [p for p in ordered if not p.is_error]
    if errors:
        raise ConfigError(errors, warnings)
    return Config(
        collector=collector,
        sink=sink,
        providers=providers,
        accounts=tuple(built.accounts),
        source_path=source_path,
        warnings=tuple(warnings),
    )
