"""The error table: every row, both body styles, header or not, the fallbacks, and real server answers."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.ch_http_server import ChServer, ch_server

from multicloud_collector.sink.errors import (
    RULES,
    RULES_BY_CODE,
    Action,
    Classified,
    ErrorRule,
    classify_exception,
    classify_response,
    parse_exception_code,
    response_failed,
)
from multicloud_collector.sink.server_version import ServerVersionError, at_least, parse_server_version

DOC = Path(__file__).resolve().parents[1] / "docs" / "clickhouse_errors.md"


def modern_body(rule: ErrorRule) -> bytes:
    return (
        f"Code: {rule.code}. DB::Exception: something went wrong. ({rule.name}) (version 24.8.1.1)\n".encode()
    )


def old_body(rule: ErrorRule) -> bytes:
    return (
        f"Code: {rule.code}, e.displayText() = DB::Exception: something, e.what() = DB::Exception\n".encode()
    )


def test_rules_are_unique_and_complete() -> None:
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes)) and set(RULES_BY_CODE) == set(codes)
    assert {r.action for r in RULES} == set(Action)
    assert all(r.why and r.name == r.name.upper() for r in RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.code}_{r.name}")
@pytest.mark.parametrize("style", ["modern", "old"])
@pytest.mark.parametrize("with_header", [True, False])
def test_every_rule_classifies_the_same_way(rule: ErrorRule, style: str, with_header: bool) -> None:
    body = modern_body(rule) if style == "modern" else old_body(rule)
    headers = {"X-ClickHouse-Exception-Code": str(rule.code)} if with_header else {}
    # statuses that disagree with the rule on purpose: the code must win
    for status in (400, 404, 500, 503):
        got = classify_response(status, headers, body)
        assert got == Classified(rule.action, rule.code, rule.name, f"code_{rule.code}")


def test_header_wins_over_body_and_is_case_insensitive() -> None:
    body = b"Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)"
    assert parse_exception_code({"x-clickhouse-exception-code": "252"}, body) == 252
    assert classify_response(500, {"X-ClickHouse-Exception-Code": "252"}, body).action is Action.RETRY
    assert parse_exception_code({"X-ClickHouse-Exception-Code": "0"}, b"") is None  # 0 = no exception
    assert parse_exception_code(None, "Code: 62, e.displayText() = DB::Exception: Syntax error") == 62


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            500,
            b"Code: 4242. DB::Exception: new. (NEW_THING)",
            Classified(Action.RETRY, 4242, "", "code_4242"),
        ),
        (
            400,
            b"Code: 4242. DB::Exception: new. (NEW_THING)",
            Classified(Action.PERMANENT, 4242, "", "code_4242"),
        ),
        (408, b"Code: 4242. DB::Exception: x", Classified(Action.RETRY, 4242, "", "code_4242")),
        (503, b"<html>bad gateway</html>", Classified(Action.RETRY, None, "", "http_503")),
        (502, b"", Classified(Action.RETRY, None, "", "http_502")),
        (429, b"slow down", Classified(Action.RETRY, None, "", "http_429")),
        (404, b"not found", Classified(Action.PERMANENT, None, "", "http_404")),
        (401, b"", Classified(Action.PERMANENT, None, "", "http_401")),
        (200, b"half a result\nCode: 241. DB::Exception", Classified(Action.RETRY, None, "", "http_200")),
    ],
)
def test_fallback_by_status(status: int, body: bytes, expected: Classified) -> None:
    assert classify_response(status, {}, body) == expected


def test_252_too_many_partitions_is_split_not_retry() -> None:
    body = b"Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). (X)"
    assert classify_response(500, {}, body) == Classified(
        Action.SPLIT, 252, "TOO_MANY_PARTS", "code_252_partitions"
    )
    plain = b"Code: 252. DB::Exception: Too many parts (3001). Merges are processing significantly slower. "
    assert classify_response(500, {}, plain).action is Action.RETRY


def test_response_failed_checks_header_on_2xx() -> None:
    assert not response_failed(200, {})
    assert response_failed(200, {"X-ClickHouse-Exception-Code": "241"})
    assert response_failed(500, {}) and response_failed(404, {})


@given(
    code=st.integers(min_value=0, max_value=10**6), sep=st.sampled_from([".", ","]), tail=st.text(max_size=80)
)
def test_body_code_property(code: int, sep: str, tail: str) -> None:
    assert parse_exception_code({}, f"Code: {code}{sep}{tail}") == code
    assert parse_exception_code({}, f"Code: {code}{sep}{tail}".encode()) == code


@given(body=st.binary(max_size=300), status=st.integers(min_value=100, max_value=599))
def test_classify_never_raises(body: bytes, status: int) -> None:
    got = classify_response(status, {}, body)
    assert got.action in set(Action) and got.reason


def test_doc_lists_every_rule_and_nothing_else() -> None:
    rows = re.findall(r"^\| (\d+) \| `([A-Z0-9_]+)` \| (\w+) \| (.+?) \|$", DOC.read_text(), re.M)
    documented = [(int(c), n, a, w) for c, n, a, w in rows]
    assert documented == [(r.code, r.name, r.action.value, r.why) for r in RULES]


# --- exceptions --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_connection_refused_is_retry(session: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.ClientError) as err:
        await session.get(f"http://127.0.0.1:{free_port()}/ping")
    assert classify_exception(err.value) == Classified(Action.RETRY, None, "", "connection")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), Classified(Action.RETRY, None, "", "timeout")),
        (TimeoutError(), Classified(Action.RETRY, None, "", "timeout")),
        (aiohttp.ServerTimeoutError("read"), Classified(Action.RETRY, None, "", "timeout")),
        (aiohttp.ServerDisconnectedError(), Classified(Action.RETRY, None, "", "connection")),
        (ConnectionResetError(104, "reset"), Classified(Action.RETRY, None, "", "connection")),
        (
            RuntimeError("Streaming insert finish failed: Code: 27. DB::Exception: Cannot parse input"),
            Classified(Action.SPLIT, 27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "code_27"),
        ),
        (ValueError("bug"), Classified(Action.PERMANENT, None, "", "exception")),
    ],
)
def test_classify_exception(exc: BaseException, expected: Classified) -> None:
    assert classify_exception(exc) == expected


# --- against the chDB-backed server ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChServer]:
    yield from ch_server(tmp_path_factory, password="pw")


def test_every_rule_name_matches_the_engine(server: ChServer) -> None:
    codes = ",".join(str(r.code) for r in RULES)
    out = server.query(f"SELECT arrayJoin([{codes}]) AS c, errorCodeToName(c) FORMAT TabSeparated")
    engine = {int(c): name for c, name in (line.split("\t") for line in out.splitlines())}
    assert {r.code: r.name for r in RULES} == engine


async def _classify(
    session: aiohttp.ClientSession, server: ChServer, body: bytes, **params: str
) -> Classified:
    headers = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": params.pop("key", "pw")}
    async with session.post(f"{server.url}/", params=params, data=body, headers=headers) as resp:
        assert resp.status != 200
        return classify_response(resp.status, resp.headers, await resp.read())


@pytest.mark.parametrize(
    ("body", "params", "code", "action"),
    [
        (b"SELECT * FROM nope_table", {}, 60, Action.PERMANENT),
        (b"SELEC 1", {}, 62, Action.PERMANENT),
        (b"SELECT 1", {"not_a_setting": "1"}, 115, Action.PERMANENT),
        (b"SELECT 1", {"key": "wrong"}, 516, Action.PERMANENT),
        (b'{"a": "x"}', {"query": "INSERT INTO default.typed FORMAT JSONEachRow"}, 27, Action.SPLIT),
        (
            b'{"a": 1, "zz": 2}',
            {
                "query": "INSERT INTO default.typed FORMAT JSONEachRow",
                "input_format_skip_unknown_fields": "0",
            },
            117,
            Action.SPLIT,
        ),
        (b"SELECT sleep(1)", {"max_execution_time": "0.2"}, 159, Action.RETRY),
    ],
)
async def test_real_server_answers(
    server: ChServer,
    session: aiohttp.ClientSession,
    body: bytes,
    params: dict[str, str],
    code: int,
    action: Action,
) -> None:
    server.query("CREATE TABLE IF NOT EXISTS default.typed (a UInt32) ENGINE = MergeTree ORDER BY a")
    got = await _classify(session, server, body, **params)
    assert (got.code, got.action, got.reason) == (code, action, f"code_{code}")


async def test_injected_overload_is_retry(server: ChServer, session: aiohttp.ClientSession) -> None:
    server.query("CREATE TABLE IF NOT EXISTS default.typed (a UInt32) ENGINE = MergeTree ORDER BY a")
    server.fail_inserts(241, times=1)
    got = await _classify(session, server, b'{"a": 1}', query="INSERT INTO default.typed FORMAT JSONEachRow")
    assert got == Classified(Action.RETRY, 241, "MEMORY_LIMIT_EXCEEDED", "code_241")


# --- server version ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18.16.1", (18, 16, 1)),
        ('"26.9.2.1"\n', (26, 9, 2, 1)),
        (b"23.8.1.1\n", (23, 8, 1, 1)),
        ("v24.3.2.23-lts", (24, 3, 2, 23)),
    ],
)
def test_parse_server_version(text: str | bytes, expected: tuple[int, ...]) -> None:
    assert parse_server_version(text) == expected


def test_parse_server_version_rejects_garbage() -> None:
    with pytest.raises(ServerVersionError, match="no number"):
        parse_server_version("unknown")


@given(st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=5))
def test_version_round_trip_and_order(parts: list[int]) -> None:
    v = parse_server_version(".".join(map(str, parts)))
    assert v == tuple(parts) and at_least(v, *parts) and at_least((*v, 0), *parts)
    assert not at_least(v, *parts[:-1], parts[-1] + 1)


def test_real_server_version(server: ChServer) -> None:
    assert at_least(parse_server_version(server.query("SELECT version()")), 23, 8)
