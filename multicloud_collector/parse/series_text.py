"""Full (slow-path) parser for the series part of a sample line: ``name{label="value",...}``.

Only lines whose series text is not yet cached come here, so clarity beats speed. Prometheus is
tolerant of blanks inside the label set and of a trailing comma; so are we.
"""

from __future__ import annotations

import re

from multicloud_collector.parse.errors import ExpositionError

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*(?:\\.[^"\\]*)*)"[ \t]*')
_LABEL_START_RE = re.compile(r'[ \t]*([^ \t=,}"]*)[ \t]*(=?)[ \t]*("?)')
_BLANKS_RE = re.compile(r"[ \t]*")
_ESCAPE_RE = re.compile(r"\\(.)")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    # Prometheus keeps unknown escapes such as "\t" verbatim, backslash included.
    return _ESCAPES.get(char, "\\" + char)


def unescape_label_value(raw: str) -> str:
    return _ESCAPE_RE.sub(_unescape, raw) if "\\" in raw else raw


def _label_error(line: str, pos: int, lineno: int) -> ExpositionError:
    column = pos + 1
    start = _LABEL_START_RE.match(line, pos)
    assert start is not None  # the pattern can match the empty string
    name, eq, quote = start.group(1), start.group(2), start.group(3)
    if start.end() >= len(line) and not name:
        return ExpositionError("parse", f"unterminated label set (missing '}}') at column {column}", lineno)
    if not name:
        return ExpositionError("parse", f"expected a label name at column {column}", lineno)
    if METRIC_NAME_RE.fullmatch(name) is None or ":" in name:
        return ExpositionError("parse", f"invalid label name {name[:64]!r} at column {column}", lineno)
    if not eq:
        return ExpositionError("parse", f"expected '=' after label name {name!r}", lineno)
    if not quote:
        return ExpositionError("parse", f"label {name!r}: value must be a double-quoted string", lineno)
    return ExpositionError("parse", f"label {name!r}: unterminated label value", lineno)


def parse_series_text(line: str, lineno: int) -> tuple[str, list[tuple[str, str]], int]:
    """Parse ``name[{labels}]`` at the start of ``line``.

    Returns (metric name, labels in source order, index just past the series text). Raises
    ``ExpositionError("parse")`` naming the line and column of the first problem.
    """
    name_match = METRIC_NAME_RE.match(line)
    if name_match is None:
        return _raise_bad_name(line, lineno)
    name = name_match.group()
    end_of_name = name_match.end()
    size = len(line)
    pos = _BLANKS_RE.match(line, end_of_name).end()  # type: ignore[union-attr]
    if pos >= size or line[pos] != "{":
        return name, [], end_of_name
    pos += 1
    labels: list[tuple[str, str]] = []
    while True:
        pos = _BLANKS_RE.match(line, pos).end()  # type: ignore[union-attr]
        if pos < size and line[pos] == "}":
            return name, labels, pos + 1
        label = _LABEL_RE.match(line, pos)
        if label is None:
            raise _label_error(line, pos, lineno)
        labels.append((label.group(1), unescape_label_value(label.group(2))))
        pos = label.end()
        if pos < size and line[pos] == ",":
            pos += 1
            continue
        if pos < size and line[pos] == "}":
            return name, labels, pos + 1
        if pos >= size:
            raise ExpositionError("parse", f"metric {name!r}: unterminated label set (missing '}}')", lineno)
        raise ExpositionError(
            "parse", f"metric {name!r}: expected ',' or '}}' at column {pos + 1}, got {line[pos]!r}", lineno
        )


def _raise_bad_name(line: str, lineno: int) -> tuple[str, list[tuple[str, str]], int]:
    shown = line.strip()[:64]
    raise ExpositionError("parse", f"expected a metric name at the start of {shown!r}", lineno)
