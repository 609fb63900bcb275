"""Parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0 (I/O-free).

Any error fails the whole scrape, like Prometheus, with a message naming the line. The hot path
handles a line whose series text is already in the target's ``SeriesCache``: split the line at
its last space, one dict lookup, ``float()`` of the token after it. Why that is safe: the cache
only holds texts that parsed completely as a series (never ending in a blank), so a hit means
the line is exactly "<valid series> <token>", and the token is checked as the full parser would.
A second chance splits at the last ``}`` (a value or timestamp never contains one) for lines with
timestamps or extra blanks. Anything else (exemplars, errors, new series) goes through the full
parser, which is the authority: the fast paths only ever accept a subset of what it accepts, and
a property test checks that cold and warm caches give identical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import attrgetter

from multicloud_collector.model import ScrapeLimits, Series
from multicloud_collector.parse.cache import SeriesCache
from multicloud_collector.parse.errors import ExpositionError
from multicloud_collector.parse.series_text import METRIC_NAME_RE, parse_series_text

__all__ = ["ExpositionError", "ParsedExposition", "SeriesCache", "is_openmetrics", "parse_exposition"]

METRIC_TYPES = frozenset(
    {"counter", "gauge", "histogram", "summary", "untyped", "gaugehistogram", "stateset", "info", "unknown"}
)
_MISS = Series("\x00miss", (), 0)  # identity sentinels of the right type for dict.get
_MISS_COMMENT = ("\x00miss", "")
_EOF = ("\x00eof", "")
_SERIES_ID = attrgetter("series_id")


@dataclass(slots=True)
class ParsedExposition:
    """One scrape, parsed. ``series[i]``, ``values[i]`` and ``timestamps_ms[i]`` belong together."""

    series: list[Series]
    values: list[float]
    timestamps_ms: list[int | None]
    types: dict[str, str]  # metric family -> counter/gauge/histogram/summary/untyped/...
    openmetrics: bool
    lines: int
    duplicates: int
    filtered: int
    nbytes: int


def is_openmetrics(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/openmetrics-text"


def parse_exposition(
    body: bytes, *, content_type: str | None, limits: ScrapeLimits, cache: SeriesCache
) -> ParsedExposition:
    """Parse one scrape body; raises ``ExpositionError`` (see its ``reason``) on any violation."""
    nbytes = len(body)
    if limits.body_size_bytes and nbytes > limits.body_size_bytes:
        raise ExpositionError("body_limit", f"body is {nbytes} bytes, limit is {limits.body_size_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = body.count(b"\n", 0, exc.start) + 1
        raise ExpositionError("encoding", f"invalid UTF-8 at byte offset {exc.start}", bad_line) from None
    om = is_openmetrics(content_type)
    lines = text.split("\n")
    if limits.line_length and nbytes > limits.line_length:
        _check_line_lengths(lines, limits.line_length)

    cache.begin_scrape(limits)
    young, old = cache.young, cache.old
    get = young.get
    comments, old_comments = cache.comments, cache.old_comments
    get_comment = comments.get
    series: list[Series] = []
    values: list[float] = []
    add_series, add_value = series.append, values.append
    stamped: list[tuple[int, int]] = []  # (index into series, timestamp): timestamps are rare
    types: dict[str, str] = {}
    filtered = 0
    eof_line = 0
    for lineno, line in enumerate(lines, 1):
        if not line:
            continue
        if line[0] == "#":
            entry = get_comment(line, _MISS_COMMENT)
            if entry is _MISS_COMMENT:
                entry = old_comments.pop(line, _MISS_COMMENT)
                if entry is _MISS_COMMENT:
                    entry = _parse_comment(line, lineno)
                comments[line] = entry
            if entry is None:
                continue
            if entry is _EOF:
                if om:
                    eof_line = lineno
                    _check_nothing_after_eof(lines, lineno)
                    break
                continue
            types[entry[0]] = entry[1]
            continue

        # Hot path: "<cached series text> <value>" split at the last space.
        key, _, token = line.rpartition(" ")
        s = get(key, _MISS)
        if s is _MISS:
            s = old.pop(key, _MISS)
            if s is not _MISS:
                young[key] = s
        if s is not _MISS and token.isascii() and "_" not in token:
            try:
                value = float(token)
            except ValueError:
                pass
            else:
                if s is None:
                    filtered += 1
                else:
                    add_series(s)
                    add_value(value)
                continue

        parsed = _parse_line(line, lineno, om, cache, limits)
        if parsed is None:
            continue
        s, value, stamp = parsed
        if s is None:
            filtered += 1
            continue
        if stamp is not None:
            stamped.append((len(series), stamp))
        add_series(s)
        add_value(value)

    line_count = len(lines) - (1 if lines[-1] == "" else 0)
    if om and not eof_line:
        raise ExpositionError("parse", "OpenMetrics body does not end with '# EOF'", line_count)
    stamps: list[int | None] = [None] * len(series)
    for index, stamp in stamped:
        stamps[index] = stamp
    duplicates = 0
    if len(set(map(_SERIES_ID, series))) != len(series):
        duplicates = _drop_duplicates(series, values, stamps)
    if limits.samples_per_scrape and len(values) > limits.samples_per_scrape:
        raise ExpositionError(
            "sample_limit", f"scrape has {len(values)} samples, limit is {limits.samples_per_scrape}"
        )
    return ParsedExposition(
        series=series,
        values=values,
        timestamps_ms=stamps,
        types=types,
        openmetrics=om,
        lines=line_count,
        duplicates=duplicates,
        filtered=filtered,
        nbytes=nbytes,
    )


def _drop_duplicates(series: list[Series], values: list[float], stamps: list[int | None]) -> int:
    """Keep the first sample of each series (in place); returns how many were dropped."""
    seen: set[int] = set()
    keep: list[int] = []
    for index, s in enumerate(series):
        if s.series_id not in seen:
            seen.add(s.series_id)
            keep.append(index)
    dropped = len(series) - len(keep)
    series[:] = [series[i] for i in keep]
    values[:] = [values[i] for i in keep]
    stamps[:] = [stamps[i] for i in keep]
    return dropped


def _check_nothing_after_eof(lines: list[str], eof_lineno: int) -> None:
    for offset, later in enumerate(lines[eof_lineno:], eof_lineno + 1):
        if later:
            raise ExpositionError("parse", f"unexpected content after '# EOF' (line {eof_lineno})", offset)


def _check_line_lengths(lines: list[str], limit: int) -> None:
    """Line length limit in bytes; characters are counted first because that is C-speed."""
    if max(map(len, lines)) * 4 <= limit:
        return
    for lineno, line in enumerate(lines, 1):
        if len(line) > limit // 4 and len(line.encode()) > limit:
            raise ExpositionError(
                "line_length", f"line is {len(line.encode())} bytes long, limit is {limit}", lineno
            )


def _om_timestamp(token: str) -> int:
    millis = float(token) * 1000
    if not math.isfinite(millis):
        raise ValueError(token)
    return round(millis)


def _parse_comment(line: str, lineno: int) -> tuple[str, str] | None:
    """Parse a ``#`` line: (family, type) for TYPE, ``_EOF`` for ``# EOF``, else ``None``."""
    if line.startswith("# TYPE "):
        parts = line.split()
        if len(parts) != 4:
            raise ExpositionError("parse", "TYPE line must be '# TYPE <metric> <type>'", lineno)
        family, kind = parts[2], parts[3].lower()
        if METRIC_NAME_RE.fullmatch(family) is None:
            raise ExpositionError("parse", f"TYPE line: invalid metric name {family[:64]!r}", lineno)
        if kind not in METRIC_TYPES:
            raise ExpositionError("parse", f"TYPE line: unknown metric type {parts[3][:32]!r}", lineno)
        return family, kind
    if line.rstrip() == "# EOF":
        return _EOF  # only meaningful for OpenMetrics; a plain comment in 0.0.4
    # "# HELP", "# UNIT", other comments: nothing to keep (OpenMetrics forbids free comments;
    # tolerated, as they carry no data).
    return None


def _parse_line(
    line: str, lineno: int, om: bool, cache: SeriesCache, limits: ScrapeLimits
) -> tuple[Series | None, float, int | None] | None:
    """Second chance for lines with a timestamp or odd blanks, then the full parse."""
    brace = line.rfind("}")
    if brace >= 0:
        key, rest = line[: brace + 1], line[brace + 1 :]
    else:
        space = line.find(" ")
        key, rest = (line[:space], line[space:]) if space > 0 else ("", "")
    s = cache.young.get(key, _MISS)
    if s is not _MISS and rest.isascii() and "_" not in rest:
        parts = rest.split()
        try:
            if len(parts) == 1:
                return s, float(parts[0]), None
            if len(parts) == 2:
                return s, float(parts[0]), _om_timestamp(parts[1]) if om else int(parts[1])
        except (ValueError, OverflowError):
            pass
    return _parse_sample_line(line, lineno, om, cache, limits)


def _parse_sample_line(
    line: str, lineno: int, om: bool, cache: SeriesCache, limits: ScrapeLimits
) -> tuple[Series | None, float, int | None] | None:
    """The authoritative parse of one sample line; ``None`` for a blank line."""
    if not line.strip():
        return None
    metric, labels, end = parse_series_text(line, lineno)
    rest = line[end:]
    if line[end - 1] != "}" and rest and rest[0] not in " \t":
        raise ExpositionError(
            "parse", f"metric {metric!r}: unexpected character {rest[0]!r} after name", lineno
        )
    value, stamp = _parse_value_and_timestamp(rest, om, lineno, metric)
    key = line[:end]
    s = cache.young.get(key, _MISS)
    if s is _MISS:
        s = cache.old.pop(key, _MISS)
        if s is _MISS:
            s = cache.build(metric, labels, lineno, limits)
        cache.young[key] = s
    return s, value, stamp


def _parse_value_and_timestamp(rest: str, om: bool, lineno: int, metric: str) -> tuple[float, int | None]:
    if om:
        hash_at = rest.find("#")
        if hash_at >= 0:
            # Exemplar: " # {labels} value [timestamp]" - validated loosely, then ignored.
            if hash_at == 0 or rest[hash_at - 1] not in " \t" or not rest.startswith(" {", hash_at + 1):
                raise ExpositionError("parse", f"metric {metric!r}: malformed exemplar", lineno)
            rest = rest[:hash_at]
    parts = rest.split()
    if not rest.isascii():
        raise ExpositionError(
            "parse", f"metric {metric!r}: non-ASCII characters in value or timestamp", lineno
        )
    if not parts:
        raise ExpositionError("parse", f"metric {metric!r}: missing value", lineno)
    if len(parts) > 2:
        raise ExpositionError(
            "parse", f"metric {metric!r}: unexpected text {parts[2][:32]!r} after timestamp", lineno
        )
    token = parts[0]
    try:
        if "_" in token:
            raise ValueError(token)
        value = float(token)
    except ValueError:
        raise ExpositionError("parse", f"metric {metric!r}: invalid value {token[:32]!r}", lineno) from None
    if len(parts) == 1:
        return value, None
    token = parts[1]
    try:
        if "_" in token:
            raise ValueError(token)
        stamp = _om_timestamp(token) if om else int(token)
    except (ValueError, OverflowError):
        unit = "float seconds" if om else "integer milliseconds"
        raise ExpositionError(
            "parse", f"metric {metric!r}: invalid timestamp {token[:32]!r} (expected {unit})", lineno
        ) from None
    return value, stamp
