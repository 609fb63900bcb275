"""Versioned, append-only schema migrations for the ClickHouse store.

Why a runner of our own: the schema must evolve without ever being created as a side effect of
start-up, and the same SQL files must serve the embedded chDB store now and a ClickHouse server
later. The runner therefore only needs an async callable that runs one SQL statement and returns
its text output. Applied versions are recorded in ``{db}.schema_migrations`` with the sha256 of the
file, so an edited (instead of appended) migration is refused loudly.

File rules: ``NNNN_name.sql`` in the migrations folder; statements end with ``;`` at the end of a
line; ``{db}`` stands for the database name. Statements should be idempotent (``IF NOT EXISTS``)
because ClickHouse DDL is not transactional: a migration that fails half-way is re-run whole.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import structlog

log = structlog.get_logger(__name__)

Executor = Callable[[str], Awaitable[str]]

ENV_MIGRATIONS_DIR = "MCC_MIGRATIONS_DIR"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$")
_DB_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\r?\n|$)")


class MigrationError(Exception):
    """A migration cannot be loaded or applied; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str
    checksum: str  # hex sha256 of the file bytes

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(slots=True)
class MigrationReport:
    database: str
    dry_run: bool = False
    applied: list[str] = field(default_factory=list)  # file names applied by this run (or pending, dry run)
    already_applied: list[str] = field(default_factory=list)
    unknown_applied: list[int] = field(default_factory=list)  # versions in the table with no file
    statements: list[str] = field(default_factory=list)  # every statement run (or that would run)

    @property
    def changed(self) -> bool:
        return bool(self.applied) and not self.dry_run

    def lines(self) -> list[str]:
        """Human-readable summary for ``mcc migrate`` (dry run: the SQL that would run)."""
        out = [f"-- warning: applied migration {v:04d} has no file" for v in self.unknown_applied]
        if not self.applied:
            done = len(self.already_applied)
            return [*out, f"database {self.database} is up to date ({done} migration(s) applied before)"]
        if self.dry_run:
            out.append(f"-- pending for database {self.database}: {', '.join(self.applied)}")
            out.extend(f"{stmt};" for stmt in self.statements)
            return out
        return [*out, *(f"applied {name} to database {self.database}" for name in self.applied)]


def default_migrations_dir() -> Path:
    env = os.environ.get(ENV_MIGRATIONS_DIR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "migrations"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read every ``NNNN_name.sql`` of ``directory``, sorted by version."""
    folder = directory if directory is not None else default_migrations_dir()
    if not folder.is_dir():
        raise MigrationError(f"migrations directory {folder} does not exist (set {ENV_MIGRATIONS_DIR}?)")
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        m = _FILE_RE.match(path.name)
        if m is None:
            raise MigrationError(
                f"migration file {path.name} is not named NNNN_name.sql (4 digits, lowercase name)"
            )
        raw = path.read_bytes()
        try:
            sql = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MigrationError(f"migration {path.name} is not valid UTF-8: {exc}") from None
        version = int(m.group(1))
        if version in found:
            raise MigrationError(
                f"migrations {found[version].filename} and {path.name} share version {version:04d}"
            )
        found[version] = Migration(
            version=version, name=m.group(2), path=path, sql=sql, checksum=hashlib.sha256(raw).hexdigest()
        )
    return [found[v] for v in sorted(found)]


def check_database_name(db: str) -> str:
    if not _DB_RE.match(db):
        raise MigrationError(f"database name {db!r} is invalid: use letters, digits and '_' (max 64)")
    return db


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` at the end of a line; drop pieces that hold only comments or blanks."""
    out: list[str] = []
    for piece in _STATEMENT_END.split(sql):
        lines = piece.strip().splitlines()
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
            lines.pop(0)  # leading comments document the file, not the statement
        if lines:
            out.append("\n".join(lines).strip())
    return out


def render(migration: Migration, db: str) -> list[str]:
    """The statements of a migration with ``{db}`` replaced by the database name."""
    check_database_name(db)
    return [stmt.replace("{db}", db) for stmt in split_statements(migration.sql)]


def bootstrap_statements(db: str) -> list[str]:
    check_database_name(db)
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations\n(\n"
        "    version UInt32,\n    name String,\n    checksum String,\n"
        "    applied_at DateTime64(3, 'UTC')\n)\nENGINE = MergeTree\nORDER BY version",
    ]


async def read_applied(execute: Executor, db: str) -> dict[int, tuple[str, str]] | None:
    """``version -> (name, checksum)`` of applied migrations; ``None`` if the table does not exist."""
    exists = (await execute(f"EXISTS TABLE {db}.schema_migrations FORMAT TabSeparated")).strip()
    if exists != "1":
        return None
    text = await execute(
        f"SELECT version, name, checksum FROM {db}.schema_migrations ORDER BY version FORMAT JSONEachRow"
    )
    applied: dict[int, tuple[str, str]] = {}
    for line in text.splitlines():
        if line.strip():
            row = orjson.loads(line)
            applied[int(row["version"])] = (str(row["name"]), str(row["checksum"]))
    return applied


def _record_statement(db: str, m: Migration) -> str:
    # name matches _FILE_RE and checksum is hex, so neither needs escaping.
    return (
        f"INSERT INTO {db}.schema_migrations (version, name, checksum, applied_at) "
        f"VALUES ({m.version}, '{m.name}', '{m.checksum}', now64(3))"
    )


async def apply_migrations(
    execute: Executor,
    db: str,
    migrations: Sequence[Migration] | None = None,
    dry_run: bool = False,
) -> MigrationReport:
    """Bring ``db`` up to the newest migration; re-running is a no-op.

    ``dry_run`` only reads (so it also works through a read-only query API) and reports the
    statements that would run.
    """
    check_database_name(db)
    todo = list(migrations) if migrations is not None else load_migrations()
    report = MigrationReport(database=db, dry_run=dry_run)
    if dry_run:
        try:
            applied = await read_applied(execute, db) or {}
        except Exception as exc:  # the database itself may not exist yet
            if "UNKNOWN_DATABASE" not in str(exc) and "Code: 81" not in str(exc):
                raise
            applied = {}
        if not applied:
            report.statements.extend(bootstrap_statements(db))
    else:
        for stmt in bootstrap_statements(db):
            await execute(stmt)
        applied = await read_applied(execute, db) or {}

    by_version = {m.version: m for m in todo}
    for version, (name, checksum) in sorted(applied.items()):
        m = by_version.get(version)
        if m is None:
            report.unknown_applied.append(version)
            log.warning("migration_file_missing", version=version, name=name, database=db)
            continue
        if m.checksum != checksum:
            raise MigrationError(
                f"migration {m.filename} was changed after it was applied (checksum mismatch); "
                "add a new migration instead"
            )
        report.already_applied.append(m.filename)

    for m in sorted(todo, key=lambda m: m.version):
        if m.version in applied:
            continue
        statements = [*render(m, db), _record_statement(db, m)]
        report.statements.extend(statements)
        report.applied.append(m.filename)
        if dry_run:
            continue
        for stmt in statements:
            try:
                await execute(stmt)
            except Exception as exc:
                raise MigrationError(f"migration {m.filename} failed: {exc}") from exc
        log.info("migration_applied", migration=m.filename, database=db, statements=len(statements) - 1)
    return report
