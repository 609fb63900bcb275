"""What the config checks report: ``<dotted.path>: message``, errors and warnings alike.

Every check appends to one list instead of raising, so a user sees all mistakes of a file in
one run of ``mcc validate`` rather than fixing them one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. ``path`` is a dotted config path (``accounts[3].exporters[0].url``) or a file name."""

    path: str
    message: str
    severity: Severity = "error"
    line: int | None = None  # 1-based line in the YAML file, when known

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def located(self) -> str:
        """``str(self)`` plus ``(line N)`` when the line is known."""
        return f"{self}" if self.line is None else f"{self} (line {self.line})"


def format_problems(problems: Iterable[Problem]) -> str:
    """One problem per line, warnings prefixed with ``warning:`` (for ``mcc validate``)."""
    lines = []
    for p in problems:
        prefix = "" if p.is_error else "warning: "
        lines.append(prefix + p.located())
    return "\n".join(lines)


class ConfigError(Exception):
    """The configuration cannot be used.

    ``problems`` holds every error found (never only the first); ``warnings`` what else was noticed.
    """

    def __init__(self, problems: Iterable[Problem], warnings: Iterable[Problem] = ()) -> None:
        self.problems: list[Problem] = list(problems)
        self.warnings: list[Problem] = list(warnings)
        super().__init__(format_problems(self.problems))

    def __str__(self) -> str:
        return format_problems(self.problems)


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """The config file does not exist (also a ``FileNotFoundError`` for callers that expect one)."""
