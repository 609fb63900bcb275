"""Typed reads from one YAML mapping, reporting problems instead of raising.

``Section`` wraps a mapping at a dotted path: it flags unknown keys (with a did-you-mean),
converts each known key to its type and, on a bad value, records ``<path>.<key>: <why>`` and
returns the default so that checking continues and *every* problem is reported in one run.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from multicloud_collector.config.overrides import parse_bool_word
from multicloud_collector.config.problems import Problem, Severity
from multicloud_collector.config.units import parse_duration, parse_size
from multicloud_collector.config.yamlsrc import join_path
from multicloud_collector.secrets import Secret, safe_url

T = TypeVar("T")
_MISSING: Any = object()


@dataclass(slots=True)
class Checker:
    """Shared state of one validation run."""

    lines: Mapping[str, int] = field(default_factory=dict)
    unresolved: set[str] = field(default_factory=set)
    referenced: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def report(self, path: str, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(path, message, severity, self._line(path)))

    def _line(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)


def display_url(url: str) -> str:
    """``url`` fit for an error message: no userinfo, no query values, even when malformed."""
    return safe_url(url)


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) URL, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "port must be 1-65535"
    if parts.scheme not in ("http", "https"):
        return "scheme must be http or https"
    if not parts.hostname:
        return "host is missing"
    if port is not None and not 1 <= port <= 65535:
        return "port must be 1-65535"
    if any(c.isspace() for c in url):
        return "contains whitespace"
    return None


class Section:
    """One mapping of the config at ``path``; unknown keys are reported on creation."""

    def __init__(self, chk: Checker, path: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
        self.chk = chk
        self.path = path
        self.data = data
        self.allowed = tuple(allowed)
        for key in data:
            if key not in self.allowed:
                chk.report(self.at(key), "unknown key" + did_you_mean(key, self.allowed))

    def at(self, key: str | int) -> str:
        return join_path(self.path, key)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None:
            if required and self.at(key) not in self.chk.unresolved:
                self.chk.report(self.at(key), "is required")
            return _MISSING
        if self.at(key) in self.chk.unresolved:
            return _MISSING
        return value

    def _convert(self, key: str, default: T, convert: Callable[[Any], T], required: bool = False) -> T:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        try:
            return convert(value)
        except (ValueError, TypeError) as exc:
            self.chk.report(self.at(key), str(exc))
            return default

    def string(
        self, key: str, default: str = "", *, required: bool = False, choices: Iterable[str] = ()
    ) -> str:
        options = tuple(choices)

        def conv(v: Any) -> str:
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise TypeError(f"expected a string, got {type_name(v)}")
            text = str(v)
            if options and text not in options:
                raise ValueError(
                    f"must be one of {', '.join(options)}, got {text!r}" + did_you_mean(text, options)
                )
            if required and not text.strip():
                raise ValueError("must not be empty")
            return text

        return self._convert(key, default, conv, required)

    def opt_string(self, key: str) -> str | None:
        return self.string(key) if self.has(key) else None

    def boolean(self, key: str, default: bool) -> bool:
        def conv(v: Any) -> bool:
            if isinstance(v, bool):
                return v
            word = parse_bool_word(v) if isinstance(v, str) else None
            if word is None:
                raise TypeError(f"expected true or false, got {type_name(v)} {v!r}")
            return word

        return self._convert(key, default, conv)

    def integer(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        def conv(v: Any) -> int:
            if isinstance(v, str) and v.strip().lstrip("+-").isdigit():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"expected an integer, got {type_name(v)} {v!r}")
            if minimum is not None and v < minimum:
                raise ValueError(f"must be >= {minimum}, got {v}")
            if maximum is not None and v > maximum:
                raise ValueError(f"must be <= {maximum}, got {v}")
            return v

        return self._convert(key, default, conv)

    def duration(self, key: str, default: float, *, positive: bool = True) -> float:
        def conv(v: Any) -> float:
            seconds = parse_duration(v)
            if positive and seconds <= 0:
                raise ValueError(f"must be greater than 0, got {v!r}")
            return seconds

        return self._convert(key, default, conv)

    def opt_duration(self, key: str) -> float | None:
        return self.duration(key, 0.0) if self.has(key) and self.at(key) not in self.chk.unresolved else None

    def size(self, key: str, default: int) -> int:
        return self._convert(key, default, parse_size)

    def url(self, key: str, *, required: bool = True) -> str:
        def conv(v: Any) -> str:
            if not isinstance(v, str):
                raise TypeError(f"expected a URL string, got {type_name(v)}")
            why = url_problem(v.strip())
            if why:
                raise ValueError(f"not a valid http(s) URL: {display_url(v)!r} ({why})")
            if urlsplit(v).password and self.at(key) not in self.chk.referenced:
                self.chk.report(
                    self.at(key), "password in URL; use ${VAR} for it, or headers/bearer_token", "warning"
                )
            return v.strip()

        return self._convert(key, "", conv, required)

    def secret(self, key: str) -> Secret | None:
        def conv(v: Any) -> Secret | None:
            if isinstance(v, Secret):
                return v if v else None
            raise TypeError(f"expected a string, got {type_name(v)}")

        return self._convert(key, None, conv)

    def string_list(self, key: str) -> tuple[str, ...]:
        def conv(v: Any) -> tuple[str, ...]:
            if isinstance(v, str):
                return (v,)
            if not isinstance(v, list) or not all(isinstance(i, str) for i in v):
                raise TypeError(f"expected a list of strings, got {type_name(v)}")
            return tuple(v)

        return self._convert(key, (), conv)

    def string_map(self, key: str) -> dict[str, str]:
        def conv(v: Any) -> dict[str, str]:
            if not isinstance(v, dict):
                raise TypeError(f"expected a mapping, got {type_name(v)}")
            out: dict[str, str] = {}
            for k, item in v.items():
                if isinstance(item, bool) or not isinstance(item, str | int | float):
                    self.chk.report(join_path(self.at(key), k), f"expected a string, got {type_name(item)}")
                    continue
                out[str(k)] = str(item)
            return out

        return self._convert(key, {}, conv)

    def headers(self, key: str = "headers") -> dict[str, Secret | str]:
        def conv(v: Any) -> dict[str, Secret | str]:
            if not isinstance(v, dict):
                raise TypeError(f"expected a mapping, got {type_name(v)}")
            out: dict[str, Secret | str] = {}
            for k, item in v.items():
                if isinstance(item, Secret):
                    out[str(k)] = item
                elif isinstance(item, str | int | float) and not isinstance(item, bool):
                    out[str(k)] = str(item)
                else:
                    self.chk.report(join_path(self.at(key), k), f"expected a string, got {type_name(item)}")
            return out

        return self._convert(key, {}, conv)

    def mapping(self, key: str, allowed: Iterable[str]) -> Section | None:
        """A sub-section; ``None`` (with a problem) when the value is not a mapping."""
        value = self.data.get(key)
        if value is None:
            return Section(self.chk, self.at(key), {}, allowed)
        if not isinstance(value, dict):
            self.chk.report(self.at(key), f"expected a mapping, got {type_name(value)}")
            return None
        return Section(self.chk, self.at(key), value, allowed)

    def items(self, key: str) -> list[tuple[str, Any]]:
        """(path, item) of a list value; a non-list is reported."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.chk.report(self.at(key), f"expected a list, got {type_name(value)}")
            return []
        return [(join_path(self.at(key), i), item) for i, item in enumerate(value)]
