"""A table whose primary key cannot carry the declared sub-partitioning, on the real PostgreSQL.

`ai_messages` with PRIMARY KEY (id, created_at) and `subpartitionBy: user_id`: PostgreSQL refuses
every sub-partitioned month. The planner sees it from the catalog before any DDL: the condition
stalls with KeyLacksPartitionColumn naming the table, the constraint, the column and the fix;
the months are still made (plain) so nothing piles into DEFAULT; the next pass sends nothing.
When a server error does happen, its DETAIL reaches the message.
"""

from __future__ import annotations

import dataclasses

import pytest
from partitionkit import (
    NOW,
    create_messages_table,
    execute,
    insert_messages,
    month_start,
    partition_db,
    partitions_of,
    query,
    table_spec,
)

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.domain.conditions import STALLING_REASONS
from lokifi_storage.domain.partitions.actions import CreatePartition
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.plan import plan_table
from lokifi_storage.reconcile.partitions import reconcile_tables
from stackfixtures import PgDatabase

SUB = {"column": "user_id", "rangeSize": 2500, "count": 2}


def _table_with_pkey(url: str) -> None:
    create_messages_table(url)
    execute(url, "ALTER TABLE ai_messages ADD PRIMARY KEY (id, created_at)")


def test_a_key_lacking_the_sub_column_stalls_once_and_months_are_still_made(
    pg_database: PgDatabase,
) -> None:
    _table_with_pkey(pg_database)
    spec = table_spec(subpartitionBy=SUB)
    with partition_db(pg_database) as db:
        first = reconcile_tables(db, [spec], NOW)
    condition = first.report().condition
    assert condition.status == "False"
    assert condition.reason == Reason.KEY_LACKS_PARTITION_COLUMN
    assert condition.reason in STALLING_REASONS
    assert first.failures == {}  # nothing was sent that the server refused
    for needed in ("public.ai_messages", "ai_messages_pkey", "lacks column user_id", "ALTER TABLE"):
        assert needed in condition.message, condition.message
    assert [name for name, _ in partitions_of(pg_database, "ai_messages")] == [
        "ai_messages_default",
        "ai_messages_p2026_01",
        "ai_messages_p2026_02",
        "ai_messages_p2026_03",
    ]

    insert_messages(pg_database, month_start(2026, 1), month_start(2026, 2), 200)
    assert query(pg_database, "SELECT count(*) FROM ai_messages_default") == [(0,)]

    with partition_db(pg_database) as db:
        second = reconcile_tables(db, [spec], NOW)
        assert db.writes == []
    assert second.report().condition == condition


def test_once_the_key_is_fixed_new_months_get_their_sub_partitions(
    pg_database: PgDatabase,
) -> None:
    _table_with_pkey(pg_database)
    spec = table_spec(subpartitionBy=SUB)
    with partition_db(pg_database) as db:
        reconcile_tables(db, [spec], NOW)
    execute(
        pg_database,
        "ALTER TABLE ai_messages DROP CONSTRAINT ai_messages_pkey,"
        " ADD CONSTRAINT ai_messages_pkey PRIMARY KEY (id, created_at, user_id)",
    )
    with partition_db(pg_database) as db:
        later = reconcile_tables(db, [table_spec(subpartitionBy=SUB, premake=3)], NOW)
    assert later.report().condition.reason != Reason.KEY_LACKS_PARTITION_COLUMN
    assert [name for name, _ in partitions_of(pg_database, "ai_messages_p2026_04")] == [
        "ai_messages_p2026_04_s0",
        "ai_messages_p2026_04_s1",
        "ai_messages_p2026_04_sdefault",
    ]


def test_a_refused_statement_reports_the_servers_detail(pg_database: PgDatabase) -> None:
    """The planner would not send this; forced past it, the server's DETAIL names the column."""
    _table_with_pkey(pg_database)
    spec = table_spec(subpartitionBy=SUB)
    with partition_db(pg_database) as db:
        observed = db.observe(request_for([spec]))["ai_messages"]
        assert observed.relation is not None
        blind = dataclasses.replace(
            observed, relation=dataclasses.replace(observed.relation, unique_keys=())
        )
        plan = plan_table(spec, blind, NOW, database=db.database)
        month = plan.actions[0]  # the first month (the DEFAULT comes after the months)
        assert isinstance(month, CreatePartition)
        assert month.partition.children
        with pytest.raises(ClientError) as refused:
            db.apply(month)
    message = refused.value.message
    assert "unique constraint on partitioned table must include all partitioning columns" in message
    assert 'DETAIL: PRIMARY KEY constraint on table "ai_messages_p2026_01" lacks column' in message
    assert '"user_id"' in message
