"""A new table's first pass looks at the catalog under the table's partition-work lock, once,
and acts on that look: two full catalog reads and one fingerprint in all (instead of three of
each), on the real primary; the partitions it makes are the ones an ordinary pass makes."""

from __future__ import annotations

from partitionkit import (
    NOW,
    create_messages_table,
    execute,
    partition_db,
    partitions_of,
    table_spec,
)
from test_partition_writers import held_by_another_writer

from example_indexes import THREAD_INDEX
from lokifi_storage.clients.postgres.catalog_cache import CATALOG_CACHE
from lokifi_storage.domain.claims import Claimant
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.reconcile.partitions import reconcile_tables
from stackfixtures import PgDatabase

CLAIMANT = Claimant(uid="0b1e8c2a-first-look", namespace="team", name="fresh")


def _kinds(statements: list[str]) -> list[str]:
    """The statements that matter here, in order: lock, catalog, fingerprint, claim, DDL."""
    out = []
    for text in statements:
        if "pg_try_advisory_lock" in text:
            out.append("lock")
        elif "hash_array_extended" in text:
            out.append("fingerprint")
        elif "obj_description" in text:
            out.append("catalog")
        elif "COMMENT ON TABLE" in text:
            out.append("claim")
        elif "CREATE TABLE" in text:
            out.append("create")
    return out


def test_a_new_tables_first_look_is_under_its_lock_and_the_catalog_is_read_twice(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database)
    spec = table_spec(indexes=[THREAD_INDEX])
    CATALOG_CACHE.clear()
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW, claimant=CLAIMANT, locked_first=True)
        kinds = _kinds(db.statements)
    assert not outcome.failures, outcome.failures
    assert kinds.count("catalog") == 2, kinds
    assert kinds.count("fingerprint") == 1, kinds
    # The lock comes before any look; the claim and the DDL act on that look.
    assert kinds[:3] == ["lock", "catalog", "claim"], kinds
    assert kinds[-2:] == ["fingerprint", "catalog"], kinds  # the look after: it seeds the cache
    assert "ai_messages" in outcome.report().status.partitions[0].table
    assert outcome.report().condition.status == "True", outcome.report().condition.message
    made = partitions_of(pg_database, "ai_messages")
    assert len(made) == 4  # DEFAULT and three months (premake 2), as an ordinary pass makes

    # The look after the changes was kept: the next pass is one fingerprint.
    with partition_db(pg_database) as db:
        again = reconcile_tables(db, [spec], NOW, claimant=CLAIMANT)
        assert _kinds(db.statements) == ["fingerprint"]
        assert db.writes == []
    assert not again.failures
    assert again.done == []


def test_an_ordinary_pass_on_the_same_table_makes_the_same_partitions(
    pg_database: PgDatabase,
) -> None:
    """The pass without the lock first (a resync) reaches the same end state."""
    create_messages_table(pg_database)
    spec = table_spec(indexes=[THREAD_INDEX])
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW, claimant=CLAIMANT)
        kinds = _kinds(db.statements)
    assert not outcome.failures
    assert kinds.index("catalog") < kinds.index("lock")  # it looks before it locks
    assert len(partitions_of(pg_database, "ai_messages")) == 4


def test_a_first_look_waits_for_nobody_and_changes_nothing_while_another_writer_holds_the_table(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database, with_default=True)
    with held_by_another_writer(pg_database), partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec()], NOW, locked_first=True)
        assert db.writes == []
    assert outcome.failures["ai_messages"].reason == "PartitionWorkBusy"
    assert partitions_of(pg_database, "ai_messages") == [("ai_messages_default", "DEFAULT")]
    # Once the other writer is done, the same pass does the work.
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec()], NOW, locked_first=True)
    assert not outcome.failures, outcome.failures
    assert len(partitions_of(pg_database, "ai_messages")) == 4


def test_the_catalog_statements_are_planned_once_per_connection_for_every_table(
    pg_database: PgDatabase,
) -> None:
    """Both catalog statements carry the request as parameters and run with a generic plan:
    one prepared statement each per connection serves every table, planned once."""
    create_messages_table(pg_database)
    execute(
        pg_database,
        "CREATE TABLE ai_events (id bigint, created_at timestamptz NOT NULL)"
        " PARTITION BY RANGE (created_at)",
    )
    specs = [table_spec(), table_spec(name="ai_events")]
    CATALOG_CACHE.clear()
    with partition_db(pg_database) as db:
        assert db.query("SHOW plan_cache_mode") == [("force_generic_plan",)]
        for _ in range(3):
            for spec in specs:
                db.observe(request_for([spec]))
        plans = db.query(
            "SELECT statement LIKE '%hash_array_extended%', generic_plans, custom_plans"
            " FROM pg_prepared_statements WHERE statement LIKE '%WITH RECURSIVE%'"
            " ORDER BY 1"
        )
    # one catalog statement and one fingerprint statement, for both tables
    assert [row[0] for row in plans] == [False, True], plans
    catalog, fingerprint = plans
    assert catalog[1:] == (2, 0)  # the first look at each table (then the cache answers)
    assert fingerprint[1:] == (6, 0)
