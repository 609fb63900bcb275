"""Human-friendly durations (``15s``, ``1h30m``) and sizes (``16MiB``) for the config file.

Config values are written by people; accepting units avoids silent mistakes such as
``timeout: 500`` meaning seconds where milliseconds were meant. Parsers are strict: anything not
understood raises ``ValueError`` with a message that says what *is* accepted.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_ORDER = ("d", "h", "m", "s", "ms")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|d|h|m|s)")
_NUMBER = re.compile(r"[+]?(\d+(?:\.\d+)?|\.\d+)")

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]+)?")

DURATION_HELP = "use a number of seconds or units d, h, m, s, ms (e.g. 15s, 500ms, 1h30m)"
SIZE_HELP = "use bytes or a unit B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. 16MiB)"


def parse_duration(v: str | int | float) -> float:
    """Seconds from ``15s``, ``500ms``, ``5m``, ``1h30m``, ``2d`` or a bare number of seconds."""
    if isinstance(v, bool):
        raise ValueError(f"invalid duration {v!r}: {DURATION_HELP}")
    if isinstance(v, int | float):
        return _check_seconds(float(v), v)
    if not isinstance(v, str):
        raise ValueError(f"invalid duration {v!r}: expected a string or number; {DURATION_HELP}")
    text = v.strip()
    if not text:
        raise ValueError(f"empty duration: {DURATION_HELP}")
    if _NUMBER.fullmatch(text):
        return _check_seconds(float(text), v)
    total = 0.0
    pos = 0
    last_rank = -1
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        rank = _DURATION_ORDER.index(m.group(2))
        if rank <= last_rank:
            raise ValueError(f"invalid duration {v!r}: units must appear once each, largest first")
        last_rank = rank
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {v!r}: {DURATION_HELP}")
    return _check_seconds(total, v)


def _check_seconds(seconds: float, original: object) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"invalid duration {original!r}: must be a finite number")
    if seconds < 0:
        raise ValueError(f"invalid duration {original!r}: must not be negative")
    return seconds


def parse_size(v: str | int | float) -> int:
    """Bytes from ``16MiB``, ``64KiB``, ``1GiB``, ``10MB`` (10**7), ``512B`` or a bare integer."""
    if isinstance(v, bool):
        raise ValueError(f"invalid size {v!r}: {SIZE_HELP}")
    if isinstance(v, int):
        if v < 0:
            raise ValueError(f"invalid size {v!r}: must not be negative")
        return v
    if isinstance(v, float):
        if not v.is_integer() or v < 0:
            raise ValueError(f"invalid size {v!r}: must be a whole, non-negative number of bytes")
        return int(v)
    if not isinstance(v, str):
        raise ValueError(f"invalid size {v!r}: expected a string or integer; {SIZE_HELP}")
    m = _SIZE.fullmatch(v.strip())
    if m is None:
        raise ValueError(f"invalid size {v!r}: {SIZE_HELP}")
    unit = (m.group(2) or "b").lower()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"invalid size {v!r}: unknown unit {m.group(2)!r}; {SIZE_HELP}")
    number = m.group(1)
    if "." in number:
        return int(float(number) * _SIZE_UNITS[unit])
    return int(number) * _SIZE_UNITS[unit]


def format_duration(seconds: float) -> str:
    """Inverse of ``parse_duration`` for whole milliseconds: ``5400`` -> ``1h30m``."""
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"cannot format duration {seconds!r}")
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts: list[str] = []
    for unit in _DURATION_ORDER:
        step = round(_DURATION_UNITS[unit] * 1000)
        count, ms = divmod(ms, step)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_size(nbytes: int) -> str:
    """Inverse of ``parse_size``: the largest binary unit that divides exactly (``16MiB``)."""
    if nbytes < 0:
        raise ValueError(f"cannot format size {nbytes!r}")
    for unit, label in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if nbytes and nbytes % unit == 0:
            return f"{nbytes // unit}{label}"
    return f"{nbytes}B"
