"""The partitions reconciler against the real PostgreSQL 15 primary of the local stack."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest
from partitionkit import (
    NOW,
    catalog_snapshot,
    create_messages_table,
    fingerprint,
    insert_messages,
    month_start,
    partition_db,
    partitions_of,
    query,
    table_spec,
)

from example_indexes import SEARCH_INDEX, THREAD_INDEX
from lokifi_storage.api.conditions import PARTITIONS_READY, Reason
from lokifi_storage.api.spec import PostgresSpec
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.reconcile.partitions import reconcile_partitions, reconcile_tables
from stackfixtures import PgDatabase


def postgres_spec(*tables: dict[str, object]) -> PostgresSpec:
    return PostgresSpec.model_validate(
        {"primary": {"secretRef": {"name": "db", "key": "url"}}, "tables": list(tables)}
    )


def test_first_reconcile_makes_default_and_partitions_ahead_with_indexes(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database)
    spec = table_spec(indexes=[THREAD_INDEX, SEARCH_INDEX])
    report = reconcile_partitions(
        postgres_spec(spec.model_dump(by_alias=True, exclude_none=True)), pg_database, at=NOW
    )
    assert report.condition.type == PARTITIONS_READY
    assert report.condition.status == "True", report.condition.message
    assert partitions_of(pg_database, "ai_messages") == [
        ("ai_messages_default", "DEFAULT"),
        (
            "ai_messages_p2026_01",
            "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')",
        ),
        (
            "ai_messages_p2026_02",
            "FOR VALUES FROM ('2026-02-01 00:00:00+00') TO ('2026-03-01 00:00:00+00')",
        ),
        (
            "ai_messages_p2026_03",
            "FOR VALUES FROM ('2026-03-01 00:00:00+00') TO ('2026-04-01 00:00:00+00')",
        ),
    ]
    parent_indexes = query(
        pg_database,
        "SELECT c.relname, x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " WHERE x.indrelid = 'ai_messages'::regclass ORDER BY 1",
    )
    assert parent_indexes == [
        ("idx_ai_messages_content_search", True),
        ("idx_ai_messages_user_thread_time", True),
    ]
    leaf_indexes = query(
        pg_database,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'idx_ai_messages_user_thread_time'::regclass ORDER BY 1",
    )
    assert [name for (name,) in leaf_indexes] == [
        "idx_ai_messages_user_thread_time_default",
        "idx_ai_messages_user_thread_time_p2026_01",
        "idx_ai_messages_user_thread_time_p2026_02",
        "idx_ai_messages_user_thread_time_p2026_03",
    ]
    assert status_json(report.status)["partitions"] == [
        {
            "table": "ai_messages",
            "count": 3,
            "oldest": "2026-01-01",
            "newest": "2026-03-01",
            "inDefault": 0,
            "archived": 0,
            "pendingCompress": 0,
            "pendingExport": 0,
        }
    ]
    assert len(report.actions) == 6  # DEFAULT, two parent indexes, three months


def test_second_reconcile_sends_no_statement_that_changes_anything(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database, with_default=True)
    insert_messages(pg_database, month_start(2026, 1), month_start(2026, 2), 2000)
    spec = table_spec(indexes=[THREAD_INDEX, SEARCH_INDEX], archive={"afterDays": 365})
    with partition_db(pg_database) as db:
        first = reconcile_tables(db, [spec], NOW)
        assert not first.failures
        assert db.writes
    before = catalog_snapshot(pg_database)
    with partition_db(pg_database) as db:
        second = reconcile_tables(db, [spec], NOW)
        assert db.writes == []
        assert second.done == []
        # The session's SETs (one round trip), the one catalog query and, because the DEFAULT
        # partition still has the pages its moved rows left (until VACUUM truncates them), one
        # exact count.
        assert [s.split()[0] for s in db.statements] == ["SET", "WITH", "SELECT"]
        assert 'FROM "public"."ai_messages_default" GROUP BY 1' in db.statements[-1]
    assert catalog_snapshot(pg_database) == before
    report = second.report()
    assert report.condition.status == "True"
    assert report.condition.reason == Reason.RECONCILED
    assert report.actions == []


def test_rows_in_default_move_into_new_partition(pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ai_messages (id bigserial, user_id bigint NOT NULL, thread_id bigint,"
            " role text, content text, tokens int, metadata jsonb, created_at timestamptz NOT NULL)"
            " PARTITION BY RANGE (created_at)"
        )
        conn.execute("CREATE TABLE ai_messages_default PARTITION OF ai_messages DEFAULT")
    insert_messages(pg_database, month_start(2025, 11), month_start(2025, 12), 300)
    insert_messages(pg_database, month_start(2026, 1), month_start(2026, 2), 350)
    insert_messages(pg_database, month_start(2026, 2), month_start(2026, 3), 350)
    insert_messages(pg_database, month_start(2027, 6), month_start(2027, 7), 50)  # far future
    before = fingerprint(pg_database, "ai_messages")
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec(indexes=[THREAD_INDEX])], NOW)
    assert not outcome.failures, outcome.failures
    assert fingerprint(pg_database, "ai_messages") == before
    assert query(pg_database, "SELECT count(*) FROM ai_messages_default") == [(0,)]
    per_partition = dict(
        query(
            pg_database,
            "SELECT tableoid::regclass::text, count(*) FROM ai_messages GROUP BY 1",
        )
    )
    assert per_partition == {
        "ai_messages_p2025_11": 300,
        "ai_messages_p2026_01": 350,
        "ai_messages_p2026_02": 350,
        "ai_messages_p2027_06": 50,
    }
    assert status_json(outcome.report().status)["partitions"][0]["inDefault"] == 0
    moved = [a for a in outcome.done if "moving" in a]
    assert len(moved) == 4


def test_missing_table_is_reported_not_created(pg_database: PgDatabase) -> None:
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec()], NOW)
        assert db.writes == []
    condition = outcome.report().condition
    assert condition.status == "False"
    assert condition.reason == Reason.TABLE_NOT_FOUND
    assert "PARTITION BY RANGE (created_at)" in condition.message


def test_plain_or_differently_partitioned_tables_are_reported_with_what_to_run(
    pg_database: PgDatabase,
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE ai_messages (id bigint, created_at timestamptz)")
        conn.execute(
            "CREATE TABLE ai_events (id bigint, kind text, created_at timestamptz)"
            " PARTITION BY LIST (kind)"
        )
    events = table_spec(name="ai_events")
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec(), events], NOW)
        assert db.writes == []
    assert outcome.plans["ai_messages"].problems[0].reason == Reason.TABLE_NOT_PARTITIONED
    assert outcome.plans["ai_events"].problems[0].reason == Reason.PARTITION_KEY_MISMATCH
    assert "PARTITION BY LIST (kind)" in outcome.report().condition.message


def test_index_added_later_is_built_per_partition_and_attached(pg_database: PgDatabase) -> None:
    create_messages_table(pg_database)
    with partition_db(pg_database) as db:
        reconcile_tables(db, [table_spec()], NOW)
    insert_messages(pg_database, month_start(2026, 1), month_start(2026, 4), 3000)
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec(indexes=[THREAD_INDEX])], NOW)
        assert not outcome.failures
        concurrently = [s for s in db.writes if "CONCURRENTLY" in s]
        assert len(concurrently) == 4  # three months and DEFAULT, each on its own
        assert any(
            s.startswith('CREATE INDEX "idx_ai_messages_user_thread_time" ON ONLY')
            for s in db.writes
        )
    assert query(
        pg_database,
        "SELECT indisvalid FROM pg_index"
        " WHERE indexrelid = 'idx_ai_messages_user_thread_time'::regclass",
    ) == [(True,)]
    plan = query(
        pg_database,
        "EXPLAIN (COSTS OFF) SELECT * FROM ai_messages WHERE user_id = 42 AND thread_id = 7"
        " ORDER BY created_at DESC LIMIT 50",
    )
    assert "idx_ai_messages_user_thread_time" in " ".join(line for (line,) in plan)


def test_invalid_index_left_by_a_crashed_build_is_dropped_and_rebuilt(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database)
    with partition_db(pg_database) as db:
        reconcile_tables(db, [table_spec()], NOW)
    insert_messages(pg_database, month_start(2026, 1), month_start(2026, 2), 500)
    # A concurrent build that fails half way leaves an INVALID index with our name behind.
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "CREATE INDEX idx_ai_messages_user_thread_time"
            " ON ONLY ai_messages (user_id, thread_id, created_at DESC)"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY idx_ai_messages_user_thread_time_p2026_01"
                " ON ai_messages_p2026_01 (role)"
            )
    assert query(
        pg_database,
        "SELECT indisvalid FROM pg_index WHERE indexrelid ="
        " 'idx_ai_messages_user_thread_time_p2026_01'::regclass",
    ) == [(False,)]
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec(indexes=[THREAD_INDEX])], NOW)
    assert not outcome.failures, outcome.failures
    assert any("drop invalid index" in a for a in outcome.done)
    rows = query(
        pg_database,
        "SELECT x.indisvalid, x.indisunique, i.inhparent::regclass::text FROM pg_index x"
        " JOIN pg_inherits i ON i.inhrelid = x.indexrelid"
        " WHERE x.indexrelid = 'idx_ai_messages_user_thread_time_p2026_01'::regclass",
    )
    assert rows == [(True, False, "idx_ai_messages_user_thread_time")]


def test_inserts_running_during_maintenance_all_succeed(pg_database: PgDatabase) -> None:
    create_messages_table(pg_database, with_default=True)
    insert_messages(pg_database, month_start(2024, 10), month_start(2026, 2), 20000)
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    conn.execute(
                        "INSERT INTO ai_messages (thread_id, user_id, role, content, created_at)"
                        " VALUES (%s, %s, 'user', 'still typing', %s)",
                        (n, n % 50, NOW + dt.timedelta(minutes=n % 500)),
                    )
                    written.append(n)
                except BaseException as error:
                    errors.append(error)
                    return

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        spec = table_spec(indexes=[THREAD_INDEX, SEARCH_INDEX], archive={"afterDays": 365})
        with partition_db(pg_database) as db:
            outcome = reconcile_tables(db, [spec], NOW)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    assert not outcome.failures, outcome.failures
    assert len(written) > 20
    assert any(a.startswith("archive") for a in outcome.done)
    live = query(pg_database, "SELECT count(*) FROM ai_messages WHERE content = 'still typing'")
    assert live == [(len(written),)]
    total = query(
        pg_database,
        "SELECT (SELECT count(*) FROM ai_messages) + (SELECT count(*) FROM archive.ai_messages)",
    )
    assert total == [(20000 + len(written),)]


def test_a_blocking_session_is_named_when_locks_time_out(pg_database: PgDatabase) -> None:
    create_messages_table(pg_database, with_default=True)
    insert_messages(pg_database, month_start(2024, 10), month_start(2024, 11), 100)
    with partition_db(pg_database) as db:
        reconcile_tables(db, [table_spec()], NOW)  # the partitions exist; now archive them
    blocker = psycopg.connect(pg_database, application_name="long-report")
    try:
        blocker.execute("SELECT count(*) FROM ai_messages")  # holds ACCESS SHARE until rollback
        spec = table_spec(archive={"afterDays": 365})
        with partition_db(pg_database, lock_timeout_ms=100, attempts=2, backoff_seconds=0.05) as db:
            outcome = reconcile_tables(db, [spec], NOW)
        error = outcome.failures["ai_messages"]
        assert error.reason == Reason.LOCK_TIMEOUT
        assert f"pid {blocker.info.backend_pid}" in error.message
        assert "application long-report" in error.message
        condition = outcome.report().condition
        assert condition.status == "False"
        assert condition.reason == Reason.LOCK_TIMEOUT
    finally:
        blocker.close()
    with partition_db(pg_database) as db:
        retried = reconcile_tables(db, [spec], NOW)
    assert not retried.failures
    assert query(pg_database, "SELECT count(*) FROM archive.ai_messages") == [(100,)]


def test_sub_partitions_split_each_month_by_user_range(pg_database: PgDatabase) -> None:
    create_messages_table(pg_database)
    spec = table_spec(
        indexes=[THREAD_INDEX],
        subpartitionBy={"column": "user_id", "rangeSize": 1000, "count": 2},
    )
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW)
        assert not outcome.failures, outcome.failures
    insert_messages(pg_database, month_start(2026, 1), month_start(2026, 2), 600, users=2500)
    placed = dict(
        query(pg_database, "SELECT tableoid::regclass::text, count(*) FROM ai_messages GROUP BY 1")
    )
    assert set(placed) == {
        "ai_messages_p2026_01_s0",
        "ai_messages_p2026_01_s1",
        "ai_messages_p2026_01_sdefault",
    }
    assert sum(placed.values()) == 600
    assert query(
        pg_database,
        "SELECT bool_and(x.indisvalid) FROM pg_index x WHERE x.indrelid IN"
        " (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'ai_messages_p2026_01'::regclass)",
    ) == [(True,)]
    with partition_db(pg_database) as db:
        again = reconcile_tables(db, [spec], NOW)
        assert db.writes == [], db.writes
    assert again.done == []
