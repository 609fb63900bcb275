"""Cluster rendering of migrations: ON CLUSTER, Replicated* engines, Distributed front tables.

No ClickHouse cluster (Keeper + several nodes) can run here, so the rendered DDL is checked at parse
level by the real engine (``formatQuery`` on the chDB-backed server) and by structure; the dry run
goes through the real HTTP path. Applying on a real cluster is not tested.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ch_http_server import ChQueryError, ChServer, ch_server

from multicloud_collector.migrations import (
    SHARDING_KEYS,
    Migration,
    MigrationError,
    apply_migrations,
    bootstrap_statements,
    cluster_statements,
    load_migrations,
    render,
)

pytest.importorskip("chdb")

CLUSTER = "prod"
ON = f"ON CLUSTER '{CLUSTER}'"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChServer]:
    yield from ch_server(tmp_path_factory)


def migration(sql: str) -> Migration:
    return Migration(version=99, name="t", path=Path("0099_t.sql"), sql=sql, checksum="0" * 64)


def all_cluster_statements(db: str = "mcc") -> list[str]:
    return [*bootstrap_statements(db, CLUSTER)] + [
        s for m in load_migrations() for s in render(m, db, CLUSTER)
    ]


def test_every_statement_parses_in_the_real_engine(server: ChServer) -> None:
    for stmt in all_cluster_statements():
        literal = stmt.replace("\\", "\\\\").replace("'", "\\'")
        try:
            formatted = server.query(f"SELECT formatQuery('{literal}') FORMAT TabSeparatedRaw")
        except ChQueryError as err:  # pragma: no cover - the failure message is the point
            pytest.fail(f"does not parse: {err}\n{stmt}")
        assert "ON CLUSTER prod" in formatted


def shipped_tables() -> dict[str, str]:
    """``table -> engine family prefix`` of every MergeTree table the shipped migrations create."""
    found: dict[str, str] = {}
    for m in load_migrations():
        for stmt in render(m, "mcc"):
            create = re.match(r"CREATE TABLE IF NOT EXISTS mcc\.(\w+)", stmt)
            engine = re.search(r"ENGINE = (\w*)MergeTree", stmt)
            if create and engine:
                found[create.group(1)] = engine.group(1)
    return found


def test_shipped_migrations_render_for_a_cluster() -> None:
    tables = shipped_tables()
    assert {"samples", "gpu_samples", "scrape_log"} <= set(tables)
    statements = [s for m in load_migrations() for s in render(m, "mcc", CLUSTER)]
    ddl = [s for s in statements if re.match(r"(CREATE|ALTER|DROP)\b", s)]
    assert ddl and all(ON in s for s in ddl)
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    assert len(creates) == 2 * len(tables)
    for table, family in tables.items():
        local = next(s for s in creates if s.startswith(f"CREATE TABLE IF NOT EXISTS mcc.{table}_local {ON}"))
        engine = (
            f"ENGINE = Replicated{family}MergeTree('/clickhouse/tables/{{shard}}/mcc/{table}', '{{replica}}'"
        )
        assert engine in local
        assert "non_replicated_deduplication_window" not in local
        front = next(s for s in creates if s.startswith(f"CREATE TABLE IF NOT EXISTS mcc.{table} {ON}"))
        assert f"AS mcc.{table}_local" in front
        key = re.escape(SHARDING_KEYS[table]) if table in SHARDING_KEYS else r"cityHash64\([\w, ]+\)"
        assert re.search(rf"Distributed\('{CLUSTER}', 'mcc', '{table}_local', {key}\)$", front), front
        assert "rand()" not in front  # a replayed batch must land on the same shards
    core = next(s for s in creates if s.startswith("CREATE TABLE IF NOT EXISTS mcc.samples_local"))
    assert "SETTINGS ttl_only_drop_parts = 1" in core and "TTL toDateTime(ts)" in core
    assert not any(re.search(r"ENGINE = \w*MergeTree\b", s) and "Replicated" not in s for s in statements)


def test_replacing_tables_shard_by_their_sorting_key() -> None:
    m = migration(
        "CREATE TABLE IF NOT EXISTS {db}.inst (at DateTime, p String, id String)\n"
        "ENGINE = ReplacingMergeTree(at)\nORDER BY (p, id);\n"
    )
    local, front = render(m, "db1", CLUSTER)
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/inst', '{replica}', at)" in local
    assert front.endswith("Distributed('prod', 'db1', 'inst_local', cityHash64(p, id))")
    unsorted = migration("CREATE TABLE {db}.x (a UInt8) ENGINE = MergeTree ORDER BY tuple();\n")
    with pytest.raises(MigrationError, match="ORDER BY"):
        render(unsorted, "db1", CLUSTER)


def test_bootstrap_for_a_cluster_replicates_one_history() -> None:
    db, table = bootstrap_statements("mcc", CLUSTER)
    assert db == f"CREATE DATABASE IF NOT EXISTS mcc {ON}"
    assert f"mcc.schema_migrations {ON}" in table
    assert "ReplicatedMergeTree('/clickhouse/tables/all/mcc/schema_migrations', '{replica}')" in table


def test_without_cluster_nothing_changes() -> None:
    for m in load_migrations():
        plain = render(m, "mcc")
        assert plain == render(m, "mcc", None)
        assert not any("ON CLUSTER" in s or "Replicated" in s or "Distributed" in s for s in plain)
    assert "ENGINE = MergeTree" in bootstrap_statements("mcc")[1]


def test_engine_arguments_and_settings_are_kept() -> None:
    m = migration(
        "CREATE TABLE IF NOT EXISTS {db}.costs (ts DateTime, v Float64, ver UInt64)\n"
        "ENGINE = ReplacingMergeTree(ver)\nORDER BY ts\n"
        "SETTINGS index_granularity = 4096, non_replicated_deduplication_window = 100,\n"
        "    min_bytes_for_wide_part = 0;\n"
    )
    local, front = render(m, "db1", "c1")
    assert local.startswith("CREATE TABLE IF NOT EXISTS db1.costs_local ON CLUSTER 'c1' (ts DateTime")
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/costs', '{replica}', ver)"
        in local
    )
    assert local.endswith("SETTINGS index_granularity = 4096, min_bytes_for_wide_part = 0")
    assert front.endswith("Distributed('c1', 'db1', 'costs_local', cityHash64(ts))")


@pytest.mark.parametrize(
    ("stmt", "expected"),
    [
        (
            "ALTER TABLE db.samples ADD COLUMN IF NOT EXISTS unit LowCardinality(String)",
            [
                f"ALTER TABLE db.samples_local {ON} ADD COLUMN IF NOT EXISTS unit LowCardinality(String)",
                f"ALTER TABLE db.samples {ON} ADD COLUMN IF NOT EXISTS unit LowCardinality(String)",
            ],
        ),
        (
            "ALTER TABLE db.samples MODIFY TTL toDateTime(ts) + INTERVAL 60 DAY",
            [f"ALTER TABLE db.samples_local {ON} MODIFY TTL toDateTime(ts) + INTERVAL 60 DAY"],
        ),
        (
            "DROP TABLE IF EXISTS db.old",
            [f"DROP TABLE IF EXISTS db.old {ON}", f"DROP TABLE IF EXISTS db.old_local {ON}"],
        ),
        (
            "CREATE VIEW IF NOT EXISTS db.v AS SELECT 1",
            [f"CREATE VIEW IF NOT EXISTS db.v {ON} AS SELECT 1"],
        ),
        ("INSERT INTO db.t VALUES (1)", ["INSERT INTO db.t VALUES (1)"]),
    ],
)
def test_alter_drop_and_other_statements(stmt: str, expected: list[str]) -> None:
    assert cluster_statements(stmt, "db", CLUSTER) == expected


@pytest.mark.parametrize("bad", ["x'; DROP", "a b", ""])
def test_bad_cluster_name_is_refused(bad: str) -> None:
    with pytest.raises(MigrationError, match="cluster name"):
        render(load_migrations()[0], "mcc", bad)


def test_macro_cluster_name_is_allowed() -> None:
    assert "ON CLUSTER '{cluster}'" in render(load_migrations()[0], "mcc", "{cluster}")[0]


async def test_dry_run_prints_cluster_ddl_over_http(server: ChServer) -> None:
    async def execute(sql: str) -> str:
        return await asyncio.to_thread(server.query, sql)

    report = await apply_migrations(execute, "cl_dry", dry_run=True, cluster=CLUSTER)
    text = "\n".join(report.lines())
    assert report.applied[0] == "0001_core.sql" and not report.changed
    assert f"CREATE DATABASE IF NOT EXISTS cl_dry {ON};" in text
    assert "ENGINE = Distributed('prod', 'cl_dry', 'samples_local', series_id);" in text
    assert "INSERT INTO cl_dry.schema_migrations" in text
    assert server.query("EXISTS DATABASE cl_dry") == "0\n"  # nothing was run
