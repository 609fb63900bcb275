"""Rows and a plain-text table for ``mcc providers list``: catalog providers, adapters, scrape kinds.

The config is read duck-typed (mapping or attributes) so this listing keeps working while the
config model evolves and can also describe a bare catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multicloud_collector.plugins.manager import Registry


def _field(obj: object, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _capabilities(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return sorted(str(k) for k, v in value.items() if v)
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return sorted(k for k in fields if getattr(value, k))
    return [str(value)]


def _used_providers(config: object) -> set[str] | None:
    accounts = _field(config, "enabled_accounts")
    accounts = accounts() if callable(accounts) else _field(config, "accounts")
    if accounts is None:
        return None
    return {str(_field(a, "provider")) for a in accounts}


def describe_plugins(config: object, registry: Registry) -> list[dict[str, Any]]:
    """Rows for ``mcc providers list``: catalog providers, then adapters, then scrape kinds.

    ``config`` is read duck-typed: ``config.catalog`` (or ``config.providers``) holds catalog entries
    (mappings or objects with name/category/capabilities/api_base_url[/enabled]) and
    ``config.enabled_accounts()`` (or ``config.accounts``) tells which providers are in use.
    """
    catalog = _field(config, "catalog")
    if catalog is None:
        catalog = _field(config, "providers") or []
    if isinstance(catalog, Mapping):
        catalog = [
            dict(v, name=k) if isinstance(v, Mapping) and "name" not in v else v for k, v in catalog.items()
        ]
    used = _used_providers(config)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    sources = [(e, "providers.yaml") for e in catalog]
    sources += [(e, registry.origins[f"catalog:{e['name']}"].package) for e in registry.extra_catalog]
    for entry, package in sources:
        name = str(_field(entry, "name", ""))
        if not name or name in seen:
            continue
        seen.add(name)
        enabled = _field(entry, "enabled")
        if enabled is None:
            enabled = name in used if used is not None else None
        rows.append(
            {
                "type": "provider",
                "name": name,
                "category": _field(entry, "category") or "",
                "capabilities": _capabilities(_field(entry, "capabilities")),
                "api_base_url": _field(entry, "api_base_url") or "",
                "adapter": name if name in registry.adapters else "",
                "enabled": enabled,
                "package": package,
            }
        )
    for kind_type, table in (("adapter", registry.adapters), ("scrape_kind", registry.scrapers)):
        prefix = "adapter" if kind_type == "adapter" else "scraper"
        for name in sorted(table):
            origin = registry.origins[f"{prefix}:{name}"]
            rows.append(
                {
                    "type": kind_type,
                    "name": name,
                    "category": "",
                    "capabilities": [],
                    "api_base_url": "",
                    "adapter": name if kind_type == "adapter" else "",
                    "enabled": None,
                    "package": f"{origin.package} {origin.version}".strip()
                    if "(builtin)" not in origin.package
                    else origin.package,
                }
            )
    return rows


_COLUMNS = ("type", "name", "category", "capabilities", "adapter", "enabled", "package", "api_base_url")


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Plain-text, column-aligned listing of ``describe_plugins`` rows."""
    cells = [[c.upper() for c in _COLUMNS]] + [[_cell(r.get(c)) for c in _COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"
