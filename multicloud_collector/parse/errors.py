"""The one error type of the exposition parser."""

from __future__ import annotations

REASONS = frozenset(
    {
        "parse",
        "encoding",
        "line_length",
        "sample_limit",
        "label_limit",
        "label_name_length",
        "label_value_length",
        "body_limit",
    }
)


class ExpositionError(ValueError):
    """A scrape body that must be rejected as a whole (like Prometheus does).

    ``reason`` is short and machine-readable (it lands in ``scrape_log.error_reason`` and in
    self-metrics); ``line`` is the 1-based line number when one line is at fault.
    """

    reason: str
    line: int | None

    def __init__(self, reason: str, message: str, line: int | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown ExpositionError reason {reason!r}")
        self.reason = reason
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line is not None else message)
