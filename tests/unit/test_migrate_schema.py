"""From the SQLite schema to target tables: types, keys of partitioned tables, compatibility
of an existing table, load order, and the routing of old rows to the archive."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.migrate_sql import create_table
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.domain.migrate_chunks import FIRST_ROWID, Checkpoint
from lokifi_storage.domain.migrate_plan import ArchiveRouter, buckets_of, with_pending_buckets
from lokifi_storage.domain.migrate_schema import (
    ForeignKey,
    SourceColumn,
    SourceTable,
    TargetColumn,
    TargetTable,
    compatibility_problems,
    load_order,
    pg_type_for,
    planned_target,
    target_name,
)
from lokifi_storage.domain.partitions.bounds import TimeRange
from lokifi_storage.domain.partitions.catalog import ObservedTable, QName
from lokifi_storage.jobs.migrate_chunks import chunk_ranges
from lokifi_storage.jobs.migrate_keys import defers_primary_key

UTC = dt.UTC

MESSAGES = SourceTable(
    name="ai_messages",
    columns=(
        SourceColumn("id", "INTEGER", pk=1),
        SourceColumn("thread_id", "INTEGER", not_null=True),
        SourceColumn("user_id", "INTEGER", not_null=True),
        SourceColumn("content", "TEXT"),
        SourceColumn("metadata", "JSON"),
        SourceColumn("created_at", "DATETIME", not_null=True),
    ),
    foreign_keys=(ForeignKey(("thread_id",), "ai_threads", ("id",)),),
)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("INTEGER", "bigint"),
        ("BIGINT", "bigint"),
        ("BOOLEAN", "boolean"),
        ("DATETIME", "timestamp with time zone"),
        ("TIMESTAMP", "timestamp with time zone"),
        ("DATE", "date"),
        ("JSON", "jsonb"),
        ("VARCHAR(255)", "text"),
        ("TEXT", "text"),
        ("CLOB", "text"),
        ("BLOB", "bytea"),
        ("", "text"),
        ("REAL", "double precision"),
        ("FLOAT", "double precision"),
        ("NUMERIC(10,2)", "numeric"),
        ("DECIMAL", "numeric"),
        ("CHAR(36) UUID", "uuid"),
    ],
)
def test_declared_types_map_by_sqlite_affinity_and_app_names(declared: str, expected: str) -> None:
    assert pg_type_for(declared) == expected


def test_partitioned_target_keys_include_the_partition_columns() -> None:
    spec = TableSpec.model_validate(
        {
            "name": "ai_messages",
            "partitionBy": {"column": "created_at", "interval": "month"},
            "subpartitionBy": {"column": "user_id", "rangeSize": 1000, "count": 4},
        }
    )
    target = planned_target(MESSAGES, QName("public", "ai_messages"), spec)
    assert target.primary_key == ("id", "created_at", "user_id")
    assert target.partition_column == "created_at"
    assert target.column("id") == TargetColumn(
        "id", "bigint", not_null=True, has_default=True, serial=True
    )
    assert target.column("metadata") == TargetColumn("metadata", "jsonb")


def test_plain_target_keeps_the_sqlite_primary_key() -> None:
    target = planned_target(MESSAGES, QName("public", "ai_messages"), None)
    assert target.primary_key == ("id",)
    assert target.partition_column is None


def test_only_a_rowid_alias_key_is_built_after_the_rows() -> None:
    """An INTEGER PRIMARY KEY is unique in SQLite and stays so as bigint, with or without the
    partition columns after it; a key SQLite does not make unique by itself (a TEXT key may
    hold NULLs, and a blob and a text that convert alike) stays in the CREATE TABLE."""
    spec = TableSpec.model_validate(
        {"name": "ai_messages", "partitionBy": {"column": "created_at", "interval": "month"}}
    )
    for declared in (None, spec):
        target = planned_target(MESSAGES, QName("public", "ai_messages"), declared)
        assert defers_primary_key(MESSAGES, target)
    keyed_by_text = SourceTable(
        name="files",
        columns=(SourceColumn("path", "TEXT", pk=1), SourceColumn("size", "INTEGER")),
    )
    target = planned_target(keyed_by_text, QName("public", "files"), None)
    assert target.primary_key == ("path",)
    assert not defers_primary_key(keyed_by_text, target)
    assert "PRIMARY KEY" in create_table(target, with_primary_key=True).as_string()
    deferred = create_table(
        planned_target(MESSAGES, QName("public", "ai_messages"), spec), with_primary_key=False
    ).as_string()
    assert "PRIMARY KEY" not in deferred
    assert '"created_at" timestamp with time zone NOT NULL' in deferred


def test_declared_table_is_found_in_its_schema() -> None:
    spec = TableSpec.model_validate({"name": "chat.ai_messages"})
    assert target_name("ai_messages", [spec]) == (QName("chat", "ai_messages"), spec)
    assert target_name("users", [spec]) == (QName("public", "users"), None)


def test_existing_table_misfits_are_named_by_table_and_column() -> None:
    existing = TargetTable(
        QName("public", "ai_messages"),
        (
            TargetColumn("id", "bigint", not_null=True, has_default=True),
            TargetColumn("thread_id", "bigint"),
            TargetColumn("user_id", "interval"),
            TargetColumn("metadata", "jsonb"),
            TargetColumn("created_at", "timestamp with time zone", not_null=True),
            TargetColumn("tenant", "text", not_null=True),
        ),
        exists=True,
    )
    problems = compatibility_problems(MESSAGES, existing)
    assert len(problems) == 3
    assert problems[0].startswith("public.ai_messages.user_id is interval")
    assert "public.ai_messages.content: the SQLite column ai_messages.content" in problems[1]
    assert problems[2].startswith("public.ai_messages.tenant is NOT NULL without a default")


def test_a_fitting_table_has_no_problems() -> None:
    target = planned_target(MESSAGES, QName("public", "ai_messages"), None)
    assert compatibility_problems(MESSAGES, target) == []


def test_referenced_tables_load_first() -> None:
    threads = SourceTable(
        "ai_threads",
        (SourceColumn("id", "INTEGER", pk=1),),
        foreign_keys=(ForeignKey(("user_id",), "users", ("id",)),),
    )
    users = SourceTable("users", (SourceColumn("id", "INTEGER", pk=1),))
    assert [t.name for t in load_order([MESSAGES, threads, users])] == [
        "users",
        "ai_threads",
        "ai_messages",
    ]


def test_hours_become_partition_buckets_handed_to_the_planner() -> None:
    hours = {
        dt.datetime(2024, 1, 31, 23, tzinfo=UTC): 2,
        dt.datetime(2024, 2, 1, 0, tzinfo=UTC): 3,
        dt.datetime(2024, 2, 9, 5, tzinfo=UTC): 1,
    }
    buckets = buckets_of(hours, "month")
    assert buckets == {
        dt.datetime(2024, 1, 1, tzinfo=UTC): 2,
        dt.datetime(2024, 2, 1, tzinfo=UTC): 4,
    }
    observed = with_pending_buckets(ObservedTable(QName("public", "t")), buckets)
    assert observed.default_rows == 6


def test_router_sends_rows_of_archived_ranges_to_the_archive() -> None:
    router = ArchiveRouter(
        [
            TimeRange(dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2023, 2, 1, tzinfo=UTC)),
            TimeRange(dt.datetime(2023, 2, 1, tzinfo=UTC), dt.datetime(2023, 3, 1, tzinfo=UTC)),
        ]
    )
    assert router.archived(b"2023-01-01 00:00:00.000000+00")
    assert router.archived(b"2023-02-28 23:59:59.999999+00")
    assert not router.archived(b"2023-03-01 00:00:00.000000+00")
    assert not router.archived(b"2022-12-31 23:59:59.999999+00")


def test_a_resume_converts_exactly_the_ranges_no_committed_chunk_covers() -> None:
    first = FIRST_ROWID
    # Two writers: the chunk (200, 300] was in flight when the run stopped, (300, 400] was not;
    # (400, 450] was cut short by the byte limit and its rest (450, 500] never committed.
    point = Checkpoint(
        "t", "public.t", False, ranges=((first, 100), (100, 200), (300, 400), (400, 450))
    )
    assert point.gaps() == ((200, 300), (450, None))
    assert Checkpoint("t", "public.t", False).gaps() == ((None, None),)
    # The first chunk lost, a later one committed: the start up to it, then the rest.
    assert Checkpoint("t", "public.t", False, ranges=((500, 900),)).gaps() == (
        (None, 500),
        (900, None),
    )
    overlapping = Checkpoint("t", "public.t", False, ranges=((first, 200), (200, 500), (300, 400)))
    assert overlapping.gaps() == ((500, None),)


def test_resumed_ranges_stay_inside_the_gaps_and_never_start_at_a_committed_chunk(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    rowids = [*range(1, 21), *range(100, 121)]
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in rowids])
    conn.commit()
    conn.close()
    # (10, 15] was in flight when the run stopped; (20, 60] holds no row at all.
    committed = ((FIRST_ROWID, 5), (5, 10), (15, 20), (60, 103))
    point = Checkpoint("t", "public.t", False, ranges=committed)
    source = SqliteSource(path)
    try:
        planned = list(chunk_ranges(source, "t", point.gaps(), 5))
    finally:
        source.close()
    assert planned == [(10, 15), (103, 108), (108, 113), (113, 118), (118, 120)]
    assert not {after for after, _ in planned} & {after for after, _ in committed}
    covered = sorted(i for after, end in [*committed, *planned] for i in rowids if after < i <= end)
    assert covered == rowids  # every row once: none doubled, none left out
