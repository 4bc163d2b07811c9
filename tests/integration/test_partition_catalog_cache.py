"""The catalog's fingerprint sees every change the catalog query would: after each change made
behind the operator's back, an observation that may reuse the cached trees equals one made
from scratch. Most changes touch one catalog only (a comment, a column's compression, a
constraint's validation or name, an index on one partition, a partition's name or bound, a
schema's name, a detach, a DEFAULT that fills up), and two are left half done by a
CONCURRENTLY command: an index marked invalid in place, a detach left pending. Each part of the
fingerprint is the only one that sees at least one of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from partitionkit import (
    NOW,
    create_messages_table,
    execute,
    insert_messages,
    month_start,
    partition_db,
    query,
    table_spec,
)

from example_indexes import THREAD_INDEX
from lokifi_storage.clients.postgres.catalog_cache import CATALOG_CACHE
from lokifi_storage.domain.partitions.catalog_query import (
    CATALOG_QUERY,
    FINGERPRINT_QUERY,
    request_for,
)
from lokifi_storage.reconcile.partitions import reconcile_tables
from stackfixtures import PgDatabase

# (made before the first look, made between the two looks)
CHANGES = [
    ("", "COMMENT ON TABLE ai_messages_p2026_02 IS 'kept by hand'"),
    ("", "ALTER TABLE ai_messages_p2026_02 ALTER COLUMN content SET COMPRESSION lz4"),
    ("", "ALTER TABLE ai_messages_p2026_03 ADD CONSTRAINT by_hand CHECK (tokens > 0) NOT VALID"),
    (
        "ALTER TABLE ai_messages_p2026_03 ADD CONSTRAINT by_hand CHECK (tokens > 0) NOT VALID",
        "ALTER TABLE ai_messages_p2026_03 VALIDATE CONSTRAINT by_hand",
    ),
    ("", "CREATE INDEX by_hand ON ai_messages_p2026_01 (thread_id)"),
    ("", "ALTER TABLE ai_messages RENAME COLUMN metadata TO meta"),
    ("", "ALTER TABLE ai_messages DETACH PARTITION ai_messages_p2026_03"),
    (  # only the bound: same relations, same parents
        "",
        "ALTER TABLE ai_messages DETACH PARTITION ai_messages_p2026_03;"
        " ALTER TABLE ai_messages ATTACH PARTITION ai_messages_p2026_03"
        " FOR VALUES FROM ('2026-03-01 00:00:00+00') TO ('2026-03-15 00:00:00+00')",
    ),
    ("", "ALTER TABLE ai_messages_p2026_02 RENAME CONSTRAINT lokifi_bounds TO by_hand"),
    ("", "CREATE TABLE ai_messages_p2031_01 (LIKE ai_messages)"),  # an orphan appears
    (  # an index of a partition becomes a partition of the parent's index
        "CREATE INDEX by_hand ON ONLY ai_messages (role);"
        " CREATE INDEX by_hand_p2026_01 ON ai_messages_p2026_01 (role)",
        "ALTER INDEX by_hand ATTACH PARTITION by_hand_p2026_01",
    ),
    ("", "ALTER TABLE ai_messages RENAME TO ai_messages_renamed"),
    ("", "ALTER TABLE ai_messages_p2026_02 RENAME TO ai_messages_p2026_02_kept"),  # pg_class only
    (  # pg_namespace only: a partition living in another schema, whose schema is renamed
        "CREATE SCHEMA side; CREATE TABLE side.ai_messages_p2030_01 (LIKE ai_messages);"
        " ALTER TABLE ai_messages ATTACH PARTITION side.ai_messages_p2030_01"
        " FOR VALUES FROM ('2030-01-01 00:00:00+00') TO ('2030-02-01 00:00:00+00')",
        "ALTER SCHEMA side RENAME TO side_renamed",
    ),
]


@pytest.mark.parametrize(("setup", "change"), CHANGES)
def test_an_observation_after_a_change_equals_one_from_scratch(
    pg_database: PgDatabase, setup: str, change: str
) -> None:
    create_messages_table(pg_database)
    spec = table_spec(indexes=[THREAD_INDEX])
    with partition_db(pg_database) as db:
        assert not reconcile_tables(db, [spec], NOW).failures
        if setup:
            execute(pg_database, setup)
        request = request_for([spec])
        before = db.observe(request)  # the trees are cached now
        assert db.observe(request) == before
        execute(pg_database, change)
        seen = db.observe(request)
        CATALOG_CACHE.clear()
        assert seen == db.observe(request)
        assert seen != before


def test_an_index_left_invalid_is_seen(pg_database: PgDatabase) -> None:
    """A failed CREATE INDEX CONCURRENTLY leaves an INVALID index (its flags are set in place)."""
    create_messages_table(pg_database)
    spec = table_spec(indexes=[THREAD_INDEX])
    with partition_db(pg_database) as db:
        assert not reconcile_tables(db, [spec], NOW).failures
        insert_messages(pg_database, month_start(2026, 1), month_start(2026, 2), 2)
        request = request_for([spec])
        before = db.observe(request)
        with pytest.raises(psycopg.errors.UniqueViolation):
            execute(
                pg_database,
                "CREATE UNIQUE INDEX CONCURRENTLY by_hand ON ai_messages_p2026_01 ((1))",
            )
        seen = db.observe(request)
        CATALOG_CACHE.clear()
        assert seen == db.observe(request)
    january = next(
        c for c in seen["ai_messages"].relation.children if c.qname.name.endswith("p2026_01")
    )
    assert [i.valid for i in january.indexes if i.name == "by_hand"] == [False]
    assert seen != before


@contextmanager
def held_back(url: str, ddl: str, table: str) -> Iterator[None]:
    """Run the CONCURRENTLY `ddl` until it commits its first transaction and waits for a
    session that keeps `table` locked; cancel it on leaving: its first step stays done."""
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as runner:
        holder.execute(f"LOCK TABLE {table} IN ACCESS SHARE MODE")
        pid = runner.info.backend_pid
        errors: list[BaseException] = []

        def run() -> None:
            try:
                runner.execute(ddl.encode())
            except psycopg.errors.QueryCanceled as error:
                errors.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        try:
            for _ in range(200):
                waiting = query(
                    url,
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %(pid)s",
                    {"pid": pid},
                )
                if waiting and waiting[0][0]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"{ddl} never waited")
            yield
        finally:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_cancel_backend(%s)", [pid])
            thread.join()
            holder.rollback()
        assert errors, f"{ddl} was not held back"


# (made before the first look, made half way between the two looks, the table it waits for)
HALF_DONE = [
    (  # indisvalid set false in place: pg_index keeps its xmin
        "CREATE INDEX by_hand ON ai_messages_p2026_01 (role)",
        "DROP INDEX CONCURRENTLY by_hand",
        "ai_messages_p2026_01",
    ),
    (  # pg_inherits marks the detach pending; pg_class is not touched (no DEFAULT allowed)
        "DROP TABLE ai_messages_default",
        "ALTER TABLE ai_messages DETACH PARTITION ai_messages_p2026_03 CONCURRENTLY",
        "ai_messages",
    ),
]


@pytest.mark.parametrize(("setup", "ddl", "waits_for"), HALF_DONE)
def test_concurrent_ddl_stopped_half_way_is_seen(
    pg_database: PgDatabase, setup: str, ddl: str, waits_for: str
) -> None:
    create_messages_table(pg_database)
    spec = table_spec(indexes=[THREAD_INDEX])
    with partition_db(pg_database) as db:
        assert not reconcile_tables(db, [spec], NOW).failures
        if setup:
            execute(pg_database, setup)
        request = request_for([spec])
        before = db.observe(request)
        with held_back(pg_database, ddl, waits_for):
            seen = db.observe(request)
        CATALOG_CACHE.clear()
        assert seen == db.observe(request)
        assert seen != before


def test_rows_arriving_in_default_are_seen(pg_database: PgDatabase) -> None:
    create_messages_table(pg_database)
    spec = table_spec(indexes=[THREAD_INDEX])
    with partition_db(pg_database) as db:
        assert not reconcile_tables(db, [spec], NOW).failures
        request = request_for([spec])
        before = db.observe(request)["ai_messages"]
        insert_messages(pg_database, month_start(2030, 1), month_start(2030, 2), 50)
        after = db.observe(request)["ai_messages"]
    assert before.default_rows == 0
    assert after.default_rows == 50


def test_the_catalog_queries_run_without_jit_compilation(pg_database: PgDatabase) -> None:
    """The planner guesses thousands of relations for the recursive walk, which put both
    catalog queries above `jit_above_cost`: LLVM compiled them at every execution, ~40-180 ms
    for a ~5 ms query. The partition client's session has JIT off, also on a connection the
    pool hands out again after `RESET ALL`."""
    create_messages_table(pg_database)
    spec = table_spec(indexes=[THREAD_INDEX])
    with partition_db(pg_database) as db:
        assert not reconcile_tables(db, [spec], NOW).failures
    for _ in range(2):  # a fresh connection, then the same one back from the pool
        with partition_db(pg_database) as db:
            assert db.query("SHOW jit") == [("off",)]
            # a table this small stays under the default threshold: lower it to any cost
            db.conn.execute("SET jit_above_cost = 0")
            for query in (CATALOG_QUERY, FINGERPRINT_QUERY):
                explain = db.conn.execute(
                    b"EXPLAIN (ANALYZE, FORMAT JSON) " + query.as_bytes(db.conn),
                    request_for([spec]).params(),
                ).fetchone()
                assert explain is not None
                assert "JIT" not in explain[0][0], explain[0][0].get("JIT")
