"""Parse the answer of ``SELECT version()`` so that the sink sends only settings a server knows.

Why: an old server answers Code 115 (UNKNOWN_SETTING) to a setting it does not know (18.16 has no
``insert_deduplication_token`` or ``async_insert``), which would turn every insert into a permanent
error. The sink reads the version once at start-up and compares tuples.
"""

from __future__ import annotations

import re

_VERSION_RE = re.compile(r"(\d+(?:\.\d+)*)")


class ServerVersionError(ValueError):
    """The text does not contain a version number."""


def parse_server_version(text: str | bytes) -> tuple[int, ...]:
    """``'18.16.1'``, ``'"26.9.2.1"\\n'`` or ``'v23.8.1.1-lts'`` -> ``(18, 16, 1)`` etc."""
    raw = text.decode(errors="replace") if isinstance(text, bytes) else text
    m = _VERSION_RE.search(raw)
    if m is None:
        raise ServerVersionError(f"server version {raw.strip()[:60]!r} has no number in it")
    return tuple(int(part) for part in m.group(1).split("."))


def at_least(version: tuple[int, ...], *minimum: int) -> bool:
    """``at_least((22, 3, 1), 22, 2)`` -> True; missing parts count as 0."""
    width = max(len(version), len(minimum))
    return version + (0,) * (width - len(version)) >= minimum + (0,) * (width - len(minimum))
