"""What to do when ClickHouse rejects an insert: one table keyed by exception code.

Why a table of codes and not HTTP statuses: ClickHouse answers 500 for transient overload
(TOO_MANY_PARTS, TOO_MANY_SIMULTANEOUS_QUERIES, MEMORY_LIMIT_EXCEEDED), 408 for a timeout and 404
for a missing table, so status-only rules (retry 5xx, drop 4xx) get both directions wrong. The code
comes from the ``X-ClickHouse-Exception-Code`` header (modern servers) or the ``Code: N`` prefix of
the body (every version; 18.x sends only the body). The HTTP status is only the fallback for codes
not in the table. ``docs/clickhouse_errors.md`` documents the same table; a test keeps them equal.

Actions: ``RETRY`` the same batch (same bytes, same dedup token) with backoff; ``SPLIT`` the batch
to isolate rows the server cannot parse; ``PERMANENT``: configuration or schema is wrong, retrying
blindly cannot help, the sink keeps the data and alerts.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp


class Action(enum.StrEnum):
    RETRY = "retry"
    PERMANENT = "permanent"
    SPLIT = "split"  # a data error in some row(s): bisect the batch


@dataclass(frozen=True)
class ErrorRule:
    code: int
    name: str
    action: Action
    why: str


_R, _S, _P = Action.RETRY, Action.SPLIT, Action.PERMANENT

RULES: tuple[ErrorRule, ...] = (
    # transient: the same batch will succeed later
    ErrorRule(3, "UNEXPECTED_END_OF_FILE", _R, "request body cut short in transit"),
    ErrorRule(159, "TIMEOUT_EXCEEDED", _R, "server-side query timeout; the server was slow"),
    ErrorRule(173, "CANNOT_ALLOCATE_MEMORY", _R, "server out of memory for now"),
    ErrorRule(201, "QUOTA_EXCEEDED", _R, "quota interval resets; back off"),
    ErrorRule(202, "TOO_MANY_SIMULTANEOUS_QUERIES", _R, "server busy; back off"),
    ErrorRule(203, "NO_FREE_CONNECTION", _R, "server-side connection pool exhausted"),
    ErrorRule(209, "SOCKET_TIMEOUT", _R, "network timeout inside the server or cluster"),
    ErrorRule(210, "NETWORK_ERROR", _R, "network error inside the server or cluster"),
    ErrorRule(225, "NO_ZOOKEEPER", _R, "replication coordinator unavailable; replicated tables recover"),
    ErrorRule(241, "MEMORY_LIMIT_EXCEEDED", _R, "memory limit hit under load; back off"),
    ErrorRule(242, "TABLE_IS_READ_ONLY", _R, "replica read-only until the coordinator is back"),
    ErrorRule(243, "NOT_ENOUGH_SPACE", _R, "server disk full; an operator frees space"),
    ErrorRule(252, "TOO_MANY_PARTS", _R, "merges are behind inserts; back off for minutes"),
    ErrorRule(285, "TOO_FEW_LIVE_REPLICAS", _R, "replicas down; quorum insert waits"),
    ErrorRule(286, "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE", _R, "previous quorum write still pending"),
    ErrorRule(319, "UNKNOWN_STATUS_OF_INSERT", _R, "outcome unknown; the dedup token makes a retry safe"),
    ErrorRule(394, "QUERY_WAS_CANCELLED", _R, "cancelled by the server (shutdown, KILL)"),
    ErrorRule(425, "SYSTEM_ERROR", _R, "operating-system error on the server"),
    ErrorRule(999, "KEEPER_EXCEPTION", _R, "replication coordinator error"),
    ErrorRule(1002, "UNKNOWN_EXCEPTION", _R, "unclassified server error; retried like a 5xx"),
    # data: some rows cannot be parsed or stored; bisect and quarantine them
    ErrorRule(6, "CANNOT_PARSE_TEXT", _S, "a row has a value that does not parse"),
    ErrorRule(26, "CANNOT_PARSE_QUOTED_STRING", _S, "a row has a broken string"),
    ErrorRule(27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", _S, "a row is malformed for the input format"),
    ErrorRule(32, "ATTEMPT_TO_READ_AFTER_EOF", _S, "a row is truncated"),
    ErrorRule(33, "CANNOT_READ_ALL_DATA", _S, "a row is shorter than its type needs"),
    ErrorRule(38, "CANNOT_PARSE_DATE", _S, "a row has a bad date"),
    ErrorRule(41, "CANNOT_PARSE_DATETIME", _S, "a row has a bad timestamp"),
    ErrorRule(53, "TYPE_MISMATCH", _S, "a row value does not fit the column type"),
    ErrorRule(69, "ARGUMENT_OUT_OF_BOUND", _S, "a row value is out of bounds"),
    ErrorRule(70, "CANNOT_CONVERT_TYPE", _S, "a row value cannot be converted to the column type"),
    ErrorRule(72, "CANNOT_PARSE_NUMBER", _S, "a row has a bad number"),
    ErrorRule(117, "INCORRECT_DATA", _S, "a row is invalid for the format"),
    ErrorRule(131, "TOO_LARGE_STRING_SIZE", _S, "a row has an oversized or unterminated string"),
    ErrorRule(321, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", _S, "a row value overflows its column type"),
    ErrorRule(349, "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN", _S, "a row has NULL in a non-Nullable column"),
    # configuration or schema: no retry can fix it; keep the data, alert
    ErrorRule(8, "THERE_IS_NO_COLUMN", _P, "schema mismatch: column missing; run mcc migrate"),
    ErrorRule(16, "NO_SUCH_COLUMN_IN_TABLE", _P, "schema mismatch: column missing; run mcc migrate"),
    ErrorRule(36, "BAD_ARGUMENTS", _P, "the statement or a setting value is invalid"),
    ErrorRule(47, "UNKNOWN_IDENTIFIER", _P, "schema mismatch in the statement"),
    ErrorRule(60, "UNKNOWN_TABLE", _P, "table missing; run mcc migrate"),
    ErrorRule(62, "SYNTAX_ERROR", _P, "the statement is broken (a bug, not the data)"),
    ErrorRule(73, "UNKNOWN_FORMAT", _P, "the server does not know the input format"),
    ErrorRule(81, "UNKNOWN_DATABASE", _P, "database missing; run mcc migrate"),
    ErrorRule(115, "UNKNOWN_SETTING", _P, "the server is too old for a setting we send"),
    ErrorRule(164, "READONLY", _P, "the user is read-only"),
    ErrorRule(192, "UNKNOWN_USER", _P, "wrong user name"),
    ErrorRule(193, "WRONG_PASSWORD", _P, "wrong password"),
    ErrorRule(194, "REQUIRED_PASSWORD", _P, "password missing"),
    ErrorRule(291, "DATABASE_ACCESS_DENIED", _P, "user may not use the database"),
    ErrorRule(497, "ACCESS_DENIED", _P, "user lacks the INSERT grant"),
    ErrorRule(516, "AUTHENTICATION_FAILED", _P, "wrong user or password"),
)

RULES_BY_CODE: Mapping[int, ErrorRule] = {rule.code: rule for rule in RULES}

TOO_MANY_PARTS = 252
_PARTITIONS_MESSAGE = re.compile(rb"too many partitions for (?:a )?single insert block", re.I)
_BODY_CODE = re.compile(rb"^\s*Code: (\d+)[.,]")
HEADER = "X-ClickHouse-Exception-Code"


@dataclass(frozen=True)
class Classified:
    action: Action
    code: int | None
    name: str
    reason: str  # short label for metrics: "code_252", "http_503", "connection", "timeout"


def parse_exception_code(headers: Mapping[str, str] | None, body: bytes | str) -> int | None:
    """The exception code: the header first, then a body ``Code: N.`` (modern) or ``Code: N,`` (18.x)."""
    if headers:
        for key, value in headers.items():
            if key.lower() == HEADER.lower() and value.strip().isdigit() and int(value) != 0:
                return int(value)
    raw = body.encode(errors="replace") if isinstance(body, str) else body
    m = _BODY_CODE.match(raw[:200])
    return int(m.group(1)) if m else None


def classify_code(code: int, status: int | None = None, body: bytes = b"") -> Classified:
    """Decision for a known exception code; codes outside the table fall back on the HTTP status."""
    rule = RULES_BY_CODE.get(code)
    if code == TOO_MANY_PARTS and _PARTITIONS_MESSAGE.search(body):
        # Same code, different problem: the batch spans too many partitions. Retrying the same
        # batch fails forever; splitting it does not. The batcher keeps a batch within one day.
        return Classified(Action.SPLIT, code, "TOO_MANY_PARTS", "code_252_partitions")
    if rule is not None:
        return Classified(rule.action, code, rule.name, f"code_{code}")
    return Classified(_status_action(status), code, "", f"code_{code}")


def _status_action(status: int | None) -> Action:
    if status is None or status >= 500 or status in (408, 429) or status < 400:
        return Action.RETRY
    return Action.PERMANENT


def classify_response(status: int, headers: Mapping[str, str], body: bytes) -> Classified:
    """Decision for a failed HTTP answer (non-2xx, or 2xx carrying an exception code)."""
    code = parse_exception_code(headers, body)
    if code is not None:
        return classify_code(code, status, body)
    return Classified(_status_action(status), None, "", f"http_{status}")


def response_failed(status: int, headers: Mapping[str, str]) -> bool:
    """A 2xx can still carry an exception (streamed answers); check the header too."""
    return not 200 <= status < 300 or parse_exception_code(headers, b"") is not None


def classify_exception(exc: BaseException) -> Classified:
    """Transport failures are retried; an exception text carrying a ClickHouse code is classified by it."""
    if isinstance(exc, TimeoutError):  # includes asyncio.TimeoutError and aiohttp.ServerTimeoutError
        return Classified(Action.RETRY, None, "", "timeout")
    if isinstance(exc, aiohttp.ClientResponseError):
        return Classified(_status_action(exc.status), None, "", f"http_{exc.status}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return Classified(Action.RETRY, None, "", "connection")
    code = parse_exception_code(None, _exception_text(exc))
    if code is not None:
        return classify_code(code, None, _exception_text(exc).encode(errors="replace"))
    return Classified(Action.PERMANENT, None, "", "exception")


def _exception_text(exc: BaseException) -> str:
    """Error texts often have a prefix (``Streaming insert finish failed: Code: 27...``)."""
    text = str(exc)
    start = text.find("Code: ")
    return text[start:] if start >= 0 else text
