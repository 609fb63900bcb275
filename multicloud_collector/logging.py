"""Process-wide log setup: structlog for our code, the same renderer for stdlib loggers.

Output is one JSON object per line when the stream is not a terminal (journald, containers,
files) and ``key=value`` console lines on a terminal. Every record carries an ISO-8601 UTC
``timestamp``, ``level``, ``logger`` and ``event``.

Event names are the callers' job and are part of the interface (dashboards and alerts grep for
them): a stable snake_case name saying what happened, with the details as keyword fields, e.g.
``log.warning("scrape_failed", target=target.id, reason="timeout")`` — never an f-string event.

Nothing secret reaches the output: the last processor passes every string value, key and
formatted exception through ``secrets.redact`` (which knows every ``Secret`` ever created), and
masks the whole value of keys that name a credential (password, token, secret, api_key,
authorization, ...), whatever it is.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from multicloud_collector.secrets import MASK, Secret, redact

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("auto", "json", "console")

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?$|passphrase|token|secret|api[_-]?key|apikey|authorization|cookie|credential|private[_-]?key",
    re.IGNORECASE,
)
_HANDLER_MARK = "_mcc_log_handler"
_INTERNAL_KEYS = frozenset({"_record", "_from_structlog"})  # ProcessorFormatter bookkeeping


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key))


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Secret):
        return MASK
    if depth < 4:
        if isinstance(value, Mapping):
            return {_scrub_key(k): _scrub_item(k, v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return redact(str(value) if hasattr(value, "__fspath__") else repr(value))


def _scrub_item(key: object, value: Any, depth: int) -> Any:
    return MASK if isinstance(key, str) and is_sensitive_key(key) else _scrub(value, depth)


def _scrub_key(key: object) -> object:
    return redact(key) if isinstance(key, str) else key


def redact_event(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: scrub secrets from every value; mask credential-named keys."""
    out: EventDict = {}
    for key, value in event_dict.items():
        if key in _INTERNAL_KEYS:
            out[key] = value
        elif key != "event" and is_sensitive_key(key):
            out[key] = MASK
        else:
            out[redact(key)] = _scrub(value)
    return out


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _resolve_format(fmt: str, stream: TextIO) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"log format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "console" if callable(isatty) and isatty() else "json"


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger to write to ``stream`` (stderr by default).

    Safe to call again (a CLI re-configures after reading the config): the handler this function
    installed before is replaced, handlers installed by others (pytest's caplog) are kept.
    """
    lvl = LEVELS.get(level.lower()) if isinstance(level, str) else None
    if lvl is None:
        raise ValueError(f"log level: expected one of {', '.join(LEVELS)}, got {level!r}")
    out = stream if stream is not None else sys.stderr
    kind = _resolve_format(fmt, out)
    renderer: Processor
    if kind == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        isatty = getattr(out, "isatty", None)
        renderer = structlog.dev.ConsoleRenderer(
            colors=bool(callable(isatty) and isatty()), exception_formatter=structlog.dev.plain_traceback
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: tests (structlog.testing.capture_logs) and CLI re-configuration must take
        # effect on module-level loggers that were already used.
        cache_logger_on_first_use=False,
    )
