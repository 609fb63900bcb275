"""A tiny Prometheus HTTP API (``/api/v1/query``) over the simulated fleet, one per provider.

Only what the collector's PromQL scraper needs is understood: a vector selector with optional
label matchers (``=``, ``!=``, ``=~``, ``!~``) and ``sum|avg|min|max|count [by (labels)] (selector)``.
Everything else is refused with Prometheus's own error envelope (HTTP 400, ``bad_data``), so the
scraper's error path is exercised against the real response shape. The parser never raises
anything but ``PromQLError`` (checked with hypothesis).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import orjson
from aiohttp import web

AGGREGATIONS: frozenset[str] = frozenset({"sum", "avg", "min", "max", "count"})
_TOKEN = re.compile(
    r"""(?:(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<op>=~|!~|!=|=)|(?P<punct>[{}(),])|(?P<other>.))"""
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class PromQLError(ValueError):
    """A query the demo cannot evaluate; ``pos`` is the 1-based column Prometheus would report."""

    def __init__(self, message: str, pos: int = 1) -> None:
        super().__init__(message)
        self.pos = pos

    def prometheus_message(self) -> str:
        return f"1:{self.pos}: parse error: {self}"


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.regex is not None
        hit = self.regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed instant query: a selector, optionally aggregated by some labels."""

    matchers: tuple[Matcher, ...]
    aggregation: str | None = None
    by: tuple[str, ...] = ()

    @property
    def metric(self) -> str | None:
        for m in self.matchers:
            if m.label == "__name__" and m.op == "=":
                return m.value
        return None


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ident | str | op | punct | eof
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if m is None or m.lastgroup is None:  # pragma: no cover - "other" matches any non-space
            raise PromQLError(f"unexpected character: {text[i]!r}", i + 1)
        start = m.start(m.lastgroup)
        toks.append(_Tok(m.lastgroup, m.group(m.lastgroup), start + 1))
        i = m.end()
    toks.append(_Tok("eof", "", len(text) + 1))
    return toks


def _unquote(tok: _Tok) -> str:
    body = tok.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]  # the tokenizer guarantees an escape is never the last character
            if nxt not in _ESCAPES:
                raise PromQLError(f"unknown escape sequence '\\{nxt}'", tok.pos + i + 1)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = repr(text) if text is not None else kind
            got = "end of input" if tok.kind == "eof" else repr(tok.text)
            raise PromQLError(f"unexpected {got}, expected {want}", tok.pos)
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (text is None or tok.text == text)

    def parse(self) -> Query:
        first = self.peek()
        if first.kind == "eof":
            raise PromQLError("no expression found in input", first.pos)
        nxt = self.peek(1)
        if first.kind == "ident" and (nxt.text == "(" or nxt.kind == "ident"):
            query = self.aggregation()
        else:
            query = Query(self.selector())
        tok = self.peek()
        if tok.kind != "eof":
            raise PromQLError(
                f"unexpected {tok.text!r} after the expression (not supported by the demo)", tok.pos
            )
        return query

    def aggregation(self) -> Query:
        op = self.take("ident")
        if op.text not in AGGREGATIONS:
            raise PromQLError(
                f"unsupported function or aggregation {op.text!r} (the demo supports {sorted(AGGREGATIONS)})",
                op.pos,
            )
        by = self.grouping() if self.at("ident") else None
        self.take("punct", "(")
        matchers = self.selector()
        self.take("punct", ")")
        if self.at("ident"):
            if by is not None:
                raise PromQLError("grouping given twice", self.peek().pos)
            by = self.grouping()
        return Query(matchers, op.text, by or ())

    def grouping(self) -> tuple[str, ...]:
        kw = self.take("ident")
        if kw.text != "by":
            raise PromQLError(
                f"unexpected {kw.text!r}, expected 'by' (the demo does not support 'without')", kw.pos
            )
        self.take("punct", "(")
        labels: list[str] = []
        while not self.at("punct", ")"):
            tok = self.take("ident")
            if not _LABEL_NAME.match(tok.text):
                raise PromQLError(f"invalid label name {tok.text!r}", tok.pos)
            labels.append(tok.text)
            if not self.at("punct", ")"):
                self.take("punct", ",")
        self.take("punct", ")")
        return tuple(labels)

    def selector(self) -> tuple[Matcher, ...]:
        matchers: list[Matcher] = []
        start = self.peek()
        if self.at("ident"):
            matchers.append(Matcher("__name__", "=", self.take("ident").text))
        if self.at("punct", "{"):
            self.take("punct", "{")
            while not self.at("punct", "}"):
                matchers.append(self.matcher())
                if not self.at("punct", "}"):
                    self.take("punct", ",")
            self.take("punct", "}")
        if not matchers:
            got = "end of input" if start.kind == "eof" else repr(start.text)
            raise PromQLError(f"unexpected {got}, expected a metric name or '{{'", start.pos)
        if all(m.matches({}) for m in matchers):
            raise PromQLError("vector selector must contain at least one non-empty matcher", start.pos)
        return tuple(matchers)

    def matcher(self) -> Matcher:
        name = self.take("ident")
        if not _LABEL_NAME.match(name.text):
            raise PromQLError(f"invalid label name {name.text!r}", name.pos)
        op = self.take("op")
        value_tok = self.take("str")
        value = _unquote(value_tok)
        regex = None
        if op.text in ("=~", "!~"):
            try:
                regex = re.compile(value)
            except (re.error, RecursionError, OverflowError) as e:
                raise PromQLError(f"invalid regular expression {value!r}: {e}", value_tok.pos) from None
        return Matcher(name.text, op.text, value, regex)


def parse_query(text: str) -> Query:
    """Parse the supported PromQL subset; raises ``PromQLError`` (never anything else)."""
    try:
        return _Parser(text).parse()
    except PromQLError:
        raise
    except RecursionError:  # pragma: no cover - defensive: the grammar is not recursive
        raise PromQLError("expression too complex") from None


# A sample as a Prometheus server would hold it: labels include "__name__".
PromSample = tuple[Mapping[str, str], float]


def evaluate(query: Query, samples: Iterable[PromSample]) -> list[tuple[dict[str, str], float]]:
    """Instant-vector result of ``query`` over ``samples``, sorted by labels for stable output."""
    selected = [(labels, v) for labels, v in samples if all(m.matches(labels) for m in query.matchers)]
    if query.aggregation is None:
        out = [(dict(labels), v) for labels, v in selected]
        return sorted(out, key=lambda r: sorted(r[0].items()))
    groups: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for labels, v in selected:
        key = tuple((name, labels[name]) for name in query.by if labels.get(name))
        groups.setdefault(key, []).append(v)
    agg = _AGG[query.aggregation]
    return [(dict(key), agg(values)) for key, values in sorted(groups.items())]


_AGG: dict[str, Callable[[list[float]], float]] = {
    "sum": lambda vs: math.fsum(vs),
    "avg": lambda vs: math.fsum(vs) / len(vs),
    "min": min,
    "max": max,
    "count": lambda vs: float(len(vs)),
}


def format_sample_value(v: float) -> str:
    """Like Go's ``strconv.FormatFloat(v, 'f', -1, 64)``, which Prometheus uses in JSON."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = repr(v)
    if "e" in r:
        r = format(Decimal(r), "f")
    return r[:-2] if r.endswith(".0") else r


def parse_time(raw: str | None, now: float) -> float:
    """``time`` parameter: unix seconds (float) or RFC 3339, default now."""
    if raw is None or raw == "":
        return now
    try:
        value = float(raw)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise PromQLError(f'invalid parameter "time": cannot parse "{raw}" to a valid timestamp') from None


def success_body(result: list[tuple[dict[str, str], float]], t: float) -> bytes:
    ts = round(t, 3)
    return orjson.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": m, "value": [ts, format_sample_value(v)]} for m, v in result],
            },
        }
    )


def error_response(status: int, error_type: str, message: str) -> web.Response:
    body = orjson.dumps({"status": "error", "errorType": error_type, "error": message})
    return web.Response(status=status, body=body, content_type="application/json")


# (provider, customer or None, t) -> samples, or None when the provider/customer is unknown
SampleSource = Callable[[str, str | None, float, str | None], Iterable[PromSample] | None]


def make_query_handler(
    source: SampleSource, clock: Callable[[], float] = time.time
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler for ``/prom/{provider}[/{customer}]/api/v1/query`` (GET or POST form)."""

    async def handle(request: web.Request) -> web.Response:
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        provider = request.match_info["provider"]
        customer = request.match_info.get("customer")
        try:
            t = parse_time(params.get("time"), clock())
        except PromQLError as e:
            return error_response(400, "bad_data", str(e))
        try:
            query = parse_query(params.get("query", ""))
        except PromQLError as e:
            return error_response(400, "bad_data", f'invalid parameter "query": {e.prometheus_message()}')
        samples = source(provider, customer, t, query.metric)
        if samples is None:
            where = provider if customer is None else f"{provider}/{customer}"
            return error_response(404, "not_found", f"no simulated Prometheus for {where!r}")
        return web.Response(body=success_body(evaluate(query, samples), t), content_type="application/json")

    return handle
