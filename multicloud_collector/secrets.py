"""Secret values that cannot leak by accident.

A ``Secret`` prints as ``***`` in ``str``/``repr``/f-strings; code that really needs the value
calls ``reveal()``. Every revealed-able value is also registered with the process-wide redactor,
so the log pipeline can scrub it from any message or exception text that picked it up anyway
(for example an upstream error body echoing an Authorization header).
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

_MIN_REDACT_LEN = 4
_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None

MASK = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return "Secret('***')"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def register_secret(value: str) -> None:
    """Remember a value that must never be printed (short values are ignored: too many false hits)."""
    global _pattern
    if not value or len(value) < _MIN_REDACT_LEN:
        return
    with _lock:
        if value in _known:
            return
        _known.add(value)
        ordered = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    pat = _pattern
    if pat is None or not text:
        return text
    return pat.sub(MASK, text)


def safe_url(url: str) -> str:
    """A URL fit for logs and metrics: userinfo and query string values removed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # out-of-range port: keep the text, it is not secret
        port = None
        netloc = parts.netloc.rpartition("@")[2]
    if port:
        netloc = f"{netloc}:{port}"
    query = "&".join(p.split("=", 1)[0] + "=***" if "=" in p else p for p in parts.query.split("&") if p)
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, "")))
