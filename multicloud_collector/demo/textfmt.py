"""Prometheus text format (0.0.4) writer for the simulated exporters.

Values are formatted the way the real exporters do (node_exporter through Go's ``strconv``
shortest form with an exponent from 1e6 on; dcgm-exporter as integers or ``%f``), so the demo
payloads look like the fixtures byte for byte in shape. The ``name{labels}`` text of each series
is cached: it is the expensive part and never changes between scrapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]

FMT_INT = "int"  # dcgm-exporter integer fields
FMT_F6 = "f6"  # dcgm-exporter float fields (%f)
FMT_GO = "go"  # Go strconv.FormatFloat(v, 'g', -1, 64), as client_golang writes


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family with its samples at one instant."""

    name: str
    help: str
    type: str
    fmt: str
    samples: tuple[tuple[Labels, float], ...]


def format_go(v: float) -> str:
    """Shortest round-trip digits; exponent form when the exponent is < -4 or >= 6 (like Go)."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    r = repr(float(v))
    if "e" in r:  # Python already uses the exponent form Go uses here (e+16, e-05)
        return r
    a = abs(v)
    if a < 1e6:
        return r[:-2] if r.endswith(".0") else r
    sign = "-" if v < 0 else ""
    digits_int, _, frac = r.lstrip("-").partition(".")
    frac = "" if frac == "0" else frac
    digits = (digits_int + frac).rstrip("0")
    exp = len(digits_int) - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e+{exp:02d}"


def format_value(v: float, fmt: str) -> str:
    if fmt == FMT_INT:
        return str(int(v))
    if fmt == FMT_F6:
        return f"{v:f}"
    return format_go(v)


def escape_label_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_SERIES_TEXT: dict[tuple[str, Labels], str] = {}
_SERIES_TEXT_MAX = 200_000


def series_text(name: str, labels: Labels) -> str:
    """``name{l="v",...} `` (with the trailing space), cached."""
    key = (name, labels)
    text = _SERIES_TEXT.get(key)
    if text is None:
        if len(_SERIES_TEXT) >= _SERIES_TEXT_MAX:
            _SERIES_TEXT.clear()
        if labels:
            inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
            text = f"{name}{{{inner}}} "
        else:
            text = f"{name} "
        _SERIES_TEXT[key] = text
    return text


def render_families(families: Iterable[Family]) -> str:
    parts: list[str] = []
    append = parts.append
    for fam in families:
        append(f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} {fam.type}\n")
        fmt = fam.fmt
        for labels, value in fam.samples:
            append(series_text(fam.name, labels))
            append(format_value(value, fmt))
            append("\n")
    return "".join(parts)
