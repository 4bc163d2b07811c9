"""The planner checks the table against the spec before any DDL: key columns, their types, and
every unique key holding every partitioning column. A mismatch is a problem with its own reason
and the fix; only the sub-partitioning being impossible still leaves the months to be made."""

from __future__ import annotations

import dataclasses
import datetime as dt

from partition_trees import default_partition, observed, parent, spec

from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.conditions import STALLING_REASONS
from lokifi_storage.domain.partitions.actions import CreatePartition
from lokifi_storage.domain.partitions.catalog import Column, ObservedRelation, QName, UniqueKey
from lokifi_storage.domain.partitions.plan import plan_table

NOW = dt.datetime(2026, 12, 15, 12, 0, tzinfo=dt.UTC)
SUB = {"column": "user_id", "rangeSize": 1000, "count": 2}
PKEY = UniqueKey("ai_messages_pkey", "p", ("id", "created_at"))


def _with_keys(relation: ObservedRelation, *keys: UniqueKey) -> ObservedRelation:
    return dataclasses.replace(relation, unique_keys=keys)


def test_a_primary_key_without_the_sub_column_stalls_with_the_constraint_column_and_fix() -> None:
    plan = plan_table(
        spec(subpartitionBy=SUB, premake=1),
        observed(_with_keys(parent([default_partition()]), PKEY)),
        NOW,
    )
    (problem,) = plan.problems
    assert problem.reason == Reason.KEY_LACKS_PARTITION_COLUMN
    assert problem.reason in STALLING_REASONS
    for needed in (
        "public.ai_messages",
        "PRIMARY KEY ai_messages_pkey (id, created_at)",
        "lacks column user_id",
        "ALTER TABLE public.ai_messages DROP CONSTRAINT ai_messages_pkey, "
        "ADD CONSTRAINT ai_messages_pkey PRIMARY KEY (id, created_at, user_id)",
        "remove subpartitionBy",
    ):
        assert needed in problem.message


def test_months_are_still_made_without_sub_partitions_when_only_those_are_impossible() -> None:
    plan = plan_table(
        spec(subpartitionBy=SUB, premake=1),
        observed(_with_keys(parent([default_partition()]), PKEY)),
        NOW,
    )
    creates = [a for a in plan.actions if isinstance(a, CreatePartition)]
    assert [c.partition.qname.name for c in creates] == [
        "ai_messages_p2026_12",
        "ai_messages_p2027_01",
    ]
    assert all(c.partition.children == () and c.partition.sub_column is None for c in creates)


def test_a_primary_key_holding_every_partitioning_column_passes() -> None:
    key = UniqueKey("ai_messages_pkey", "p", ("id", "created_at", "user_id"))
    plan = plan_table(
        spec(subpartitionBy=SUB, premake=1),
        observed(_with_keys(parent([default_partition()]), key)),
        NOW,
    )
    assert plan.problems == ()
    creates = [a for a in plan.actions if isinstance(a, CreatePartition)]
    assert creates
    assert all(c.partition.sub_column == "user_id" for c in creates)


def test_a_unique_index_without_a_constraint_is_checked_too_and_its_fix_rebuilds_it() -> None:
    index = UniqueKey("uniq_msg", "i", ("thread_id", "created_at"))
    plan = plan_table(
        spec(subpartitionBy=SUB, premake=1),
        observed(_with_keys(parent([default_partition()]), index)),
        NOW,
    )
    (problem,) = plan.problems
    assert "unique index uniq_msg (thread_id, created_at) lacks column user_id" in problem.message
    assert (
        "DROP INDEX public.uniq_msg; CREATE UNIQUE INDEX uniq_msg ON public.ai_messages "
        "(thread_id, created_at, user_id)" in problem.message
    )


def test_a_plain_table_whose_key_lacks_the_time_column_names_both_problems() -> None:
    plain = ObservedRelation(
        qname=QName("public", "ai_messages"),
        kind="r",
        columns=(Column("id", "bigint"), Column("created_at", "timestamp with time zone")),
        unique_keys=(UniqueKey("ai_messages_pkey", "p", ("id",)),),
    )
    plan = plan_table(spec(), observed(plain), NOW)
    assert [p.reason for p in plan.problems] == [
        Reason.TABLE_NOT_PARTITIONED,
        Reason.KEY_LACKS_PARTITION_COLUMN,
    ]
    assert "lacks column created_at" in plan.problems[1].message
    assert plan.actions == ()


def test_a_plain_table_without_the_time_column_or_with_a_text_one_says_so() -> None:
    missing = ObservedRelation(
        qname=QName("public", "ai_messages"), kind="r", columns=(Column("id", "bigint"),)
    )
    text = dataclasses.replace(missing, columns=(Column("created_at", "text"),))
    (plain, no_column) = plan_table(spec(), observed(missing), NOW).problems
    (_, wrong_type) = plan_table(spec(), observed(text), NOW).problems
    assert plain.reason == Reason.TABLE_NOT_PARTITIONED
    assert no_column.reason == wrong_type.reason == Reason.PARTITION_KEY_MISMATCH
    assert "has no column created_at" in no_column.message
    assert "created_at of public.ai_messages is text" in wrong_type.message


def test_a_text_sub_column_still_leaves_the_months_to_be_made() -> None:
    plan = plan_table(
        spec(subpartitionBy={"column": "content", "rangeSize": 10, "count": 2}, premake=1),
        observed(parent([default_partition()])),
        NOW,
    )
    assert plan.problems[0].reason == Reason.PARTITION_KEY_MISMATCH
    creates = [a for a in plan.actions if isinstance(a, CreatePartition)]
    assert [c.partition.qname.name for c in creates] == [
        "ai_messages_p2026_12",
        "ai_messages_p2027_01",
    ]
    assert all(c.partition.children == () for c in creates)
