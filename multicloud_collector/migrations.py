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


def render(migration: Migration, db: str, cluster: str | None = None) -> list[str]:
    """The statements of a migration with ``{db}`` replaced; with ``cluster``, rewritten for a cluster."""
    check_database_name(db)
    statements = [stmt.replace("{db}", db) for stmt in split_statements(migration.sql)]
    if cluster is None:
        return statements
    check_cluster_name(cluster)
    return [out for stmt in statements for out in cluster_statements(stmt, db, cluster)]


def bootstrap_statements(db: str, cluster: str | None = None) -> list[str]:
    check_database_name(db)
    on, engine = "", "MergeTree"
    if cluster is not None:
        # One replication path for every shard: each node then sees the same applied versions.
        on = f" ON CLUSTER '{check_cluster_name(cluster)}'"
        engine = f"ReplicatedMergeTree('/clickhouse/tables/all/{db}/schema_migrations', '{{replica}}')"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}{on}",
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations{on}\n(\n"
        "    version UInt32,\n    name String,\n    checksum String,\n"
        f"    applied_at DateTime64(3, 'UTC')\n)\nENGINE = {engine}\nORDER BY version",
    ]


# --- cluster rendering ------------------------------------------------------------------------
# Convention: ``<table>_local`` (Replicated*MergeTree, ON CLUSTER) holds the data on every shard;
# ``<table>`` is a Distributed table over it, used for writes and reads, so the collector and
# queries use the same names on a single server and on a cluster. The sharding key is
# deterministic (never rand()): a batch replayed after an unclear failure must split into the same
# per-shard blocks, or the shards' deduplication cannot recognise it. Tables not listed here shard
# by a hash of their sorting key, which also keeps every version of a ReplacingMergeTree row on
# one shard (FINAL only merges within a shard).
SHARDING_KEYS: dict[str, str] = {
    "samples": "series_id",
    "gpu_samples": "cityHash64(host, gpu_uuid)",
    "scrape_log": "cityHash64(target)",
}
_CLUSTER_RE = re.compile(r"^[A-Za-z0-9_.{}-]{1,128}$")
_CREATE_RE = re.compile(r"^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(\w+)\.(\w+)", re.I)
_ALTER_DROP_RE = re.compile(r"^(ALTER\s+TABLE|DROP\s+TABLE(?:\s+IF\s+EXISTS)?)\s+(\w+)\.(\w+)", re.I)
_OTHER_DDL_RE = re.compile(
    r"^((?:CREATE|DROP|ALTER|RENAME)\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?"
    r"(?:VIEW|DICTIONARY|DATABASE|TABLE)(?:\s+IF\s+(?:NOT\s+)?EXISTS)?\s+[\w.]+)",
    re.I,
)
_ENGINE_RE = re.compile(r"ENGINE\s*=\s*(\w*)MergeTree\b(?:\s*\(([^)]*)\))?", re.I)
_ORDER_BY = re.compile(r"\bORDER\s+BY\s+([^\n]+)", re.I)
_SETTINGS_CLAUSE = re.compile(r"^(.*)\bSETTINGS\b(.*)$", re.I | re.S)  # greedy: the last SETTINGS
_COLUMN_ALTER = re.compile(r"\b(?:ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.I)


def check_cluster_name(cluster: str) -> str:
    if not _CLUSTER_RE.match(cluster):
        raise MigrationError(
            f"cluster name {cluster!r} is invalid: use letters, digits, '_', '.', '-' or a macro"
        )
    return cluster


def cluster_statements(stmt: str, db: str, cluster: str) -> list[str]:
    """One single-server statement as the statements that do the same on ``cluster``."""
    on = f"ON CLUSTER '{cluster}'"
    create = _CREATE_RE.match(stmt)
    if create and _ENGINE_RE.search(stmt):
        return _cluster_table(stmt, create, db, on, cluster)
    alter = _ALTER_DROP_RE.match(stmt)
    if alter:
        verb, sdb, table = alter.groups()
        rest = stmt[alter.end() :]
        local = f"{verb} {sdb}.{table}_local {on}{rest}"
        if verb.upper().startswith("ALTER") and not _COLUMN_ALTER.search(rest):
            return [local]  # TTL, settings, partitions: only the data table has them
        front = f"{verb} {sdb}.{table} {on}{rest}"
        # a Distributed table mirrors the columns of its local table; drop it before the data
        return [front, local] if verb.upper().startswith("DROP") else [local, front]
    other = _OTHER_DDL_RE.match(stmt)
    if other:
        return [f"{other.group(1)} {on}{stmt[other.end() :]}"]
    return [stmt]  # INSERT/SELECT etc. run on the node we talk to


def sharding_key_from_order_by(body: str) -> str:
    """``cityHash64(<sorting key columns>)``; a table without a sorting key cannot be sharded stably."""
    m = _ORDER_BY.search(body)
    key = m.group(1).strip() if m else ""
    if key.startswith("(") and key.endswith(")"):
        key = key[1:-1].strip()
    if not key or key.lower() == "tuple()":
        raise MigrationError("cluster mode needs an ORDER BY key (or a SHARDING_KEYS entry) to shard a table")
    return f"cityHash64({key})"


def _drop_non_replicated_setting(body: str) -> str:
    """Replicated tables deduplicate by default (``replicated_deduplication_window``); the
    non-replicated window is meaningless for them, so it is taken out of the SETTINGS clause."""
    m = _SETTINGS_CLAUSE.match(body)
    if m is None:
        return body
    items = [item.strip() for item in m.group(2).split(",") if item.strip()]
    kept = [item for item in items if not item.lower().startswith("non_replicated_deduplication_window")]
    return m.group(1).rstrip() + (f"\nSETTINGS {', '.join(kept)}" if kept else "")


def _cluster_table(stmt: str, create: re.Match[str], db: str, on: str, cluster: str) -> list[str]:
    if_not_exists, sdb, table = create.group(1) or "", create.group(2), create.group(3)
    head = f"CREATE TABLE {if_not_exists}{sdb}.{table}_local {on}"
    body = stmt[create.end() :]

    def replicated(m: re.Match[str]) -> str:
        family, args = m.group(1), (m.group(2) or "").strip()
        path = f"'/clickhouse/tables/{{shard}}/{db}/{table}', '{{replica}}'"
        return f"ENGINE = Replicated{family}MergeTree({path}{', ' + args if args else ''})"

    body = _ENGINE_RE.sub(replicated, body, count=1)
    body = _drop_non_replicated_setting(body)
    key = SHARDING_KEYS.get(table) or sharding_key_from_order_by(body)
    front = (
        f"CREATE TABLE {if_not_exists}{sdb}.{table} {on}\nAS {sdb}.{table}_local\n"
        f"ENGINE = Distributed('{cluster}', '{sdb}', '{table}_local', {key})"
    )
    return [head + body, front]


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
    cluster: str | None = None,
) -> MigrationReport:
    """Bring ``db`` up to the newest migration; re-running is a no-op.

    ``dry_run`` only reads (so it also works through a read-only query API) and reports the
    statements that would run. ``cluster`` renders ``ON CLUSTER`` DDL with replicated and
    Distributed tables (see ``cluster_statements``).
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
            report.statements.extend(bootstrap_statements(db, cluster))
    else:
        for stmt in bootstrap_statements(db, cluster):
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
        statements = [*render(m, db, cluster), _record_statement(db, m)]
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
