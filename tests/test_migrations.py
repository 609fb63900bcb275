"""Migration runner: file rules, rendering, and apply / re-run / checksum guard / dry run on real chDB."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from multicloud_collector.migrations import (
    MigrationError,
    apply_migrations,
    default_migrations_dir,
    load_migrations,
    render,
    split_statements,
)
from multicloud_collector.model import GPU_METRIC_COLUMNS
from multicloud_collector.sink.embedded import EmbeddedSink

pytest.importorskip("chdb")

REPO_MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("migrations") / "data"


@pytest.fixture
async def store(store_path: Path) -> AsyncIterator[EmbeddedSink]:
    s = EmbeddedSink(store_path, "mcc", migrate=False)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def mig_dir(tmp_path: Path) -> Path:
    d = tmp_path / "migrations"
    shutil.copytree(REPO_MIGRATIONS, d)
    return d


async def scalar(s: EmbeddedSink, sql: str) -> str:
    return (await s.execute(sql)).strip()


# -- files ----------------------------------------------------------------------------------


def test_default_dir_is_the_repo_folder_and_env_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MCC_MIGRATIONS_DIR", raising=False)
    assert default_migrations_dir() == REPO_MIGRATIONS
    migs = load_migrations()
    assert migs[0].filename == "0001_core.sql"
    first = migs[0]
    assert (first.version, first.name) == (1, "core")
    assert first.checksum == hashlib.sha256((REPO_MIGRATIONS / "0001_core.sql").read_bytes()).hexdigest()
    (tmp_path / "0007_only.sql").write_text("SELECT 1;\n")
    monkeypatch.setenv("MCC_MIGRATIONS_DIR", str(tmp_path))
    assert [m.version for m in load_migrations()] == [7]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_core.sql": "SELECT 1;"}, "1_core.sql is not named NNNN_name.sql"),
        ({"0001_Core.sql": "SELECT 1;"}, "not named NNNN_name.sql"),
        (
            {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"},
            "0001_a.sql and 0001_b.sql share version 0001",
        ),
    ],
)
def test_bad_files_are_refused_by_name(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)


def test_missing_dir_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations(tmp_path / "nope")
    (tmp_path / "0001_x.sql").write_bytes(b"SELECT '\xff';")
    with pytest.raises(MigrationError, match=r"0001_x\.sql is not valid UTF-8"):
        load_migrations(tmp_path)


def test_split_only_on_semicolon_at_end_of_line_and_render_database() -> None:
    sql = (
        "-- header\n\nCREATE TABLE {db}.a (s String DEFAULT ';x') ENGINE = Memory;\n-- only a comment;\n"
        "INSERT INTO {db}.a VALUES ('a;b');  \n  -- trailing comment\n"
    )
    assert split_statements(sql) == [
        "CREATE TABLE {db}.a (s String DEFAULT ';x') ENGINE = Memory",
        "INSERT INTO {db}.a VALUES ('a;b')",
    ]
    (core,) = [m for m in load_migrations(REPO_MIGRATIONS) if m.version == 1]
    stmts = render(core, "prod_1")
    assert len(stmts) == 3 and all("{db}" not in s for s in stmts)
    assert stmts[0].startswith("CREATE TABLE IF NOT EXISTS prod_1.samples")
    assert all("ENGINE = MergeTree" in s and "non_replicated_deduplication_window = 1000" in s for s in stmts)
    with pytest.raises(MigrationError, match="database name 'x; DROP'"):
        render(core, "x; DROP")


# -- applying on real chDB --------------------------------------------------------------------


async def test_apply_then_rerun_is_a_noop(store: EmbeddedSink) -> None:
    shipped = load_migrations(REPO_MIGRATIONS)
    names = [m.filename for m in shipped]
    report = await apply_migrations(store.execute, "m_apply", shipped)
    assert report.applied == names and report.changed
    assert report.lines() == [f"applied {n} to database m_apply" for n in names]
    tables = (
        await store.execute("SELECT name FROM system.tables WHERE database = 'm_apply' ORDER BY name")
    ).split()
    assert {"gpu_samples", "samples", "schema_migrations", "scrape_log"} <= set(tables)
    rows = [
        orjson.loads(x)
        for x in (
            await store.query("SELECT * FROM m_apply.schema_migrations ORDER BY version", "JSONEachRow")
        ).splitlines()
    ]
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in shipped
    ]

    again = await apply_migrations(store.execute, "m_apply", load_migrations(REPO_MIGRATIONS))
    assert again.applied == [] and again.statements == [] and not again.changed
    assert again.already_applied == names
    assert again.lines() == [f"database m_apply is up to date ({len(names)} migration(s) applied before)"]
    assert await scalar(store, "SELECT count() FROM m_apply.schema_migrations") == str(len(names))


async def test_changed_file_is_refused_and_new_file_is_applied(store: EmbeddedSink, mig_dir: Path) -> None:
    await apply_migrations(store.execute, "m_guard", load_migrations(mig_dir))
    shipped = [m.filename for m in load_migrations(mig_dir)]
    (mig_dir / "0099_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {db}.extra (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
    )
    report = await apply_migrations(store.execute, "m_guard", load_migrations(mig_dir))
    assert report.applied == ["0099_extra.sql"] and report.already_applied == shipped
    assert await scalar(store, "EXISTS TABLE m_guard.extra") == "1"

    core = mig_dir / "0001_core.sql"
    core.write_text(core.read_text() + "\n-- an innocent edit\n")
    with pytest.raises(MigrationError) as exc:
        await apply_migrations(store.execute, "m_guard", load_migrations(mig_dir))
    assert str(exc.value) == (
        "migration 0001_core.sql was changed after it was applied (checksum mismatch); "
        "add a new migration instead"
    )


async def test_dry_run_lists_statements_without_executing(store: EmbeddedSink) -> None:
    names = [m.filename for m in load_migrations(REPO_MIGRATIONS)]
    report = await apply_migrations(store.execute, "m_dry", load_migrations(REPO_MIGRATIONS), dry_run=True)
    assert report.dry_run and report.applied == names and not report.changed
    assert report.statements[0] == "CREATE DATABASE IF NOT EXISTS m_dry"
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS m_dry.gpu_samples") for s in report.statements)
    assert report.statements[-1].startswith("INSERT INTO m_dry.schema_migrations")
    lines = report.lines()
    assert lines[0] == f"-- pending for database m_dry: {', '.join(names)}" and lines[-1].endswith(";")
    assert await scalar(store, "SELECT count() FROM system.databases WHERE name = 'm_dry'") == "0"

    await apply_migrations(store.execute, "m_dry", load_migrations(REPO_MIGRATIONS))
    after = await apply_migrations(store.execute, "m_dry", load_migrations(REPO_MIGRATIONS), dry_run=True)
    assert after.applied == [] and after.statements == []


async def test_applied_version_without_file_is_reported(store: EmbeddedSink, mig_dir: Path) -> None:
    (mig_dir / "0099_extra.sql").write_text("CREATE TABLE IF NOT EXISTS {db}.e (x UInt8) ENGINE = Memory;\n")
    await apply_migrations(store.execute, "m_gone", load_migrations(mig_dir))
    (mig_dir / "0099_extra.sql").unlink()
    report = await apply_migrations(store.execute, "m_gone", load_migrations(mig_dir))
    assert report.unknown_applied == [99]
    assert report.lines()[0] == "-- warning: applied migration 0099 has no file"


async def test_failing_migration_names_the_file_and_is_not_recorded(
    store: EmbeddedSink, mig_dir: Path
) -> None:
    last_shipped = max(m.version for m in load_migrations(mig_dir))
    (mig_dir / "0099_broken.sql").write_text("CREATE TABLE {db}.broken (x NoSuchType) ENGINE = Memory;\n")
    with pytest.raises(MigrationError, match=r"migration 0099_broken.sql failed: .*NoSuchType"):
        await apply_migrations(store.execute, "m_fail", load_migrations(mig_dir))
    assert await scalar(store, "SELECT max(version) FROM m_fail.schema_migrations") == str(last_shipped)


async def test_schema_matches_the_model(store: EmbeddedSink) -> None:
    await apply_migrations(store.execute, "m_schema", load_migrations(REPO_MIGRATIONS))
    cols = (
        await store.execute(
            "SELECT name FROM system.columns WHERE database = 'm_schema' AND table = 'gpu_samples'"
        )
    ).split()
    assert set(GPU_METRIC_COLUMNS) <= set(cols)
    info = [
        orjson.loads(x)
        for x in (
            await store.query(
                "SELECT name, sorting_key, partition_key, create_table_query FROM system.tables "
                "WHERE database = 'm_schema' ORDER BY name",
                "JSONEachRow",
            )
        ).splitlines()
    ]
    by_name = {r["name"]: r for r in info}
    assert by_name["samples"]["sorting_key"] == "provider, metric, series_id, ts"
    for table, days in (("samples", 30), ("gpu_samples", 90), ("scrape_log", 7)):
        ddl = by_name[table]["create_table_query"]
        assert by_name[table]["partition_key"] == "toDate(ts)"
        assert f"TTL toDateTime(ts) + toIntervalDay({days})" in ddl
        assert "non_replicated_deduplication_window = 1000" in ddl
        assert "DateTime64(3, 'UTC')" in ddl
    assert "Map(LowCardinality(String), String)" in by_name["samples"]["create_table_query"]
    assert "CODEC(Gorilla" in by_name["samples"]["create_table_query"]
