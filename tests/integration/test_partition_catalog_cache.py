"""The catalog's fingerprint sees every change the catalog query would: after each change made
behind the operator's back, an observation that may reuse the cached trees equals one made
from scratch. Each change touches one catalog only (a comment, a column's compression, a
constraint's validation, an index on one partition, a detach, a DEFAULT that fills up)."""

from __future__ import annotations

import pytest
from partitionkit import (
    NOW,
    create_messages_table,
    execute,
    insert_messages,
    month_start,
    partition_db,
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
