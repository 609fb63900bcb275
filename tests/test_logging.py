"""configure_logging: JSON/console output, stdlib routing, and secrets that never reach the output."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.logging import configure_logging, is_sensitive_key, redact_event
from multicloud_collector.secrets import Secret

CANARY = Secret("canary-7d41f0c2e9")
VALUE = CANARY.reveal()


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_lines_with_standard_fields() -> None:
    buf = io.StringIO()
    configure_logging("info", stream=buf)  # not a TTY: JSON
    structlog.get_logger("mcc.test").info("scrape_failed", target="t1", attempt=2)
    (rec,) = lines(buf)
    assert rec["event"] == "scrape_failed" and rec["level"] == "info" and rec["logger"] == "mcc.test"
    assert rec["target"] == "t1" and rec["attempt"] == 2
    assert rec["timestamp"].endswith("Z") and rec["timestamp"][10] == "T"


def test_canary_secret_never_appears() -> None:
    buf = io.StringIO()
    configure_logging("debug", "json", stream=buf)
    log = structlog.get_logger("mcc.canary")
    log.warning("upstream_error", body=f"invalid key {VALUE} supplied", extra={"nested": [VALUE]})
    log.info("fetching", url=f"https://user:{VALUE}@api.example.test/v1/instances?api_key={VALUE}")
    log.info("auth", password="hunter2", api_key="k-123", authorization="Bearer abc", token=CANARY)
    try:
        raise RuntimeError(f"provider said: bad token {VALUE}")
    except RuntimeError as exc:
        log.exception("provider_failed")
        log.error("provider_failed_again", error=exc)
        logging.getLogger("aiohttp.client").exception("stdlib failure with %s", VALUE)
    log.info(f"event text {VALUE}")
    out = buf.getvalue()
    assert VALUE not in out
    recs = lines(buf)
    assert len(recs) == 7
    assert recs[0]["body"] == "invalid key *** supplied" and recs[0]["extra"] == {"nested": ["***"]}
    assert recs[1]["url"] == "https://user:***@api.example.test/v1/instances?api_key=***"
    assert {recs[2][k] for k in ("password", "api_key", "authorization", "token")} == {"***"}
    assert "RuntimeError: provider said: bad token ***" in recs[3]["exception"]
    assert recs[4]["error"] == "RuntimeError: provider said: bad token ***"
    assert recs[5]["logger"] == "aiohttp.client" and recs[5]["event"] == "stdlib failure with ***"
    assert "bad token ***" in recs[5]["exception"]
    assert recs[6]["event"] == "event text ***"


def test_console_format_on_a_tty() -> None:
    buf = TTY()
    configure_logging("info", "auto", stream=buf)
    structlog.get_logger("mcc.console").info("collector_started", targets=3, note=VALUE)
    out = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
    assert "collector_started" in out and "targets=3" in out and "note=***" in out
    assert VALUE not in out
    assert not out.lstrip().startswith("{")


def test_console_format_explicit_without_tty() -> None:
    buf = io.StringIO()
    configure_logging("info", "console", stream=buf)
    try:
        raise ValueError(f"boom {VALUE}")
    except ValueError:
        structlog.get_logger("x").exception("failed")
    out = buf.getvalue()
    assert "failed" in out and "ValueError: boom ***" in out and VALUE not in out
    assert "\x1b[" not in out  # no colours when the stream is not a terminal


def test_level_filtering_for_structlog_and_stdlib() -> None:
    buf = io.StringIO()
    configure_logging("warning", "json", stream=buf)
    structlog.get_logger("a").info("hidden")
    logging.getLogger("b").info("hidden too")
    structlog.get_logger("a").warning("shown")
    logging.getLogger("b").error("shown too")
    assert [r["event"] for r in lines(buf)] == ["shown", "shown too"]


def test_reconfigure_replaces_only_its_own_handler() -> None:
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    configure_logging("info", "json", stream=second)
    structlog.get_logger("r").info("once")
    assert first.getvalue() == "" and len(lines(second)) == 1
    assert foreign in logging.getLogger().handlers
    logging.getLogger().removeHandler(foreign)


@pytest.mark.parametrize(
    ("level", "fmt", "message"), [("loud", "json", "log level"), ("info", "xml", "log format")]
)
def test_bad_level_or_format_is_a_clear_error(level: str, fmt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configure_logging(level, fmt, stream=io.StringIO())


def test_sensitive_key_names() -> None:
    for key in (
        "password",
        "db_password",
        "passwd",
        "Token",
        "access_token",
        "client_secret",
        "api_key",
        "apikey",
        "API-KEY",
        "Authorization",
        "cookie",
        "credentials",
        "private_key",
    ):
        assert is_sensitive_key(key), key
    for key in ("target", "url", "event", "error", "account", "passes"):
        assert not is_sensitive_key(key), key


def test_redact_event_keeps_internals_and_masks_objects() -> None:
    class Thing:
        def __repr__(self) -> str:
            return f"Thing({VALUE})"

    marker = object()
    out = redact_event(
        None,
        "info",
        {
            "_record": marker,
            "obj": Thing(),
            "n": 1.5,
            "ok": True,
            "none": None,
            "s": {VALUE},
            "deep": [[[[[VALUE]]]]],
        },
    )
    assert out["_record"] is marker and out["obj"] == "Thing(***)" and out["n"] == 1.5 and out["ok"] is True
    assert out["none"] is None and out["s"] == ["***"]
    assert VALUE not in json.dumps(out["deep"])


@given(prefix=st.text(max_size=50), suffix=st.text(max_size=50), key=st.text(min_size=1, max_size=20))
def test_canary_is_scrubbed_from_any_value(prefix: str, suffix: str, key: str) -> None:
    text = prefix + VALUE + suffix
    out = redact_event(
        None, "info", {"event": "e", key: text, "list": [text], "map": {"k": text}, "_x": text}
    )
    assert VALUE not in json.dumps(out, default=str)
