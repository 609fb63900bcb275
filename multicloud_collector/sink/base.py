"""The sink contract: what the batcher hands over and how failures are classified.

An ``EncodedBatch`` is immutable and carries a deterministic token (sha256 of table and body), so
that a batch replayed after a failure can be deduplicated by the store
(``insert_deduplication_token``). ``SinkError.retryable`` is the one decision the batcher needs:
keep the batch and retry, or give up and count the rows as dropped.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Protocol

# ClickHouse exception codes that mean "this batch or statement will never succeed as is":
# parse/type errors, unknown table/column/database, syntax, unknown setting, auth.
PERMANENT_CODES: frozenset[int] = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        8,  # THERE_IS_NO_COLUMN
        16,  # NO_SUCH_COLUMN_IN_TABLE
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        36,  # BAD_ARGUMENTS
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        44,  # ILLEGAL_COLUMN
        46,  # UNKNOWN_FUNCTION
        47,  # UNKNOWN_IDENTIFIER
        53,  # TYPE_MISMATCH
        60,  # UNKNOWN_TABLE
        62,  # SYNTAX_ERROR
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        73,  # UNKNOWN_FORMAT
        81,  # UNKNOWN_DATABASE
        115,  # UNKNOWN_SETTING
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        164,  # READONLY
        192,  # UNKNOWN_USER
        193,  # WRONG_PASSWORD
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
    }
)

_CODE_RE = re.compile(r"Code: (\d+)[.,]")


def parse_error_code(message: str) -> int | None:
    """The ClickHouse exception code in an error text (``Code: 60. DB::Exception...``)."""
    m = _CODE_RE.search(message)
    return int(m.group(1)) if m else None


def is_retryable_code(code: int | None) -> bool:
    """Unknown or transient codes are retried: dropping data needs a positive reason."""
    return code is None or code not in PERMANENT_CODES


class SinkError(Exception):
    """An insert or statement failed; ``retryable`` tells the batcher whether to keep the batch."""

    def __init__(self, message: str, *, retryable: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code

    @classmethod
    def from_message(cls, message: str) -> SinkError:
        code = parse_error_code(message)
        return cls(message, retryable=is_retryable_code(code), code=code)

    @property
    def reason(self) -> str:
        """Short label for metrics: the code, or the class name when there is none."""
        return str(self.code) if self.code is not None else type(self).__name__


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """One insert: JSONEachRow lines for one table."""

    table: str
    body: bytes
    rows: int
    token: str
    created: float

    @classmethod
    def build(cls, table: str, body: bytes, rows: int) -> EncodedBatch:
        digest = hashlib.sha256(table.encode() + b"\x00" + body).hexdigest()
        return cls(table=table, body=body, rows=rows, token=digest, created=time.time())

    @property
    def nbytes(self) -> int:
        return len(self.body)


class Sink(Protocol):
    async def start(self) -> None: ...

    async def insert(self, batch: EncodedBatch) -> None: ...

    async def execute(self, sql: str) -> str: ...

    async def query(self, sql: str, fmt: str = "PrettyCompact") -> bytes: ...

    def state(self) -> str:
        """``"starting"`` | ``"writing"`` | ``"retrying"`` | ``"down"``."""
        ...

    async def close(self) -> None: ...
