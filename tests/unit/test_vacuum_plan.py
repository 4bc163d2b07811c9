"""The vacuum plan: leaves one by one, one ANALYZE on the parent, names parsed literally."""

from __future__ import annotations

import pytest

from lokifi_storage.domain.vacuum_plan import Relation, TableName, parse_table_name, plan_vacuum

MESSAGES = Relation(
    "public",
    "ai_messages",
    partitioned=True,
    leaves=(("public", "ai_messages_2025_01"), ("public", "ai_messages_default")),
)
THREADS = Relation("public", "ai_threads")


def test_names_split_into_schema_and_table() -> None:
    assert parse_table_name("ai_threads") == TableName(None, "ai_threads")
    assert parse_table_name(" archive.ai_messages ") == TableName("archive", "ai_messages")
    for bad in ("", ".x", "a.", "a.b.c"):
        with pytest.raises(ValueError, match="schema"):
            parse_table_name(bad)


def test_a_partitioned_table_is_vacuumed_leaf_by_leaf_then_analysed_once() -> None:
    names = [TableName(None, "ai_messages"), TableName(None, "ai_threads")]
    steps, missing = plan_vacuum(names, {names[0]: MESSAGES, names[1]: THREADS}, analyze=True)
    assert [s.describe() for s in steps] == [
        "VACUUM public.ai_messages_2025_01",
        "VACUUM public.ai_messages_default",
        "ANALYZE public.ai_messages",
        "VACUUM (ANALYZE) public.ai_threads",
    ]
    assert missing == []


def test_without_analyze_only_vacuums_run() -> None:
    name = TableName(None, "ai_messages")
    steps, _ = plan_vacuum([name], {name: MESSAGES}, analyze=False)
    assert [s.command for s in steps] == ["vacuum", "vacuum"]
    assert not any(s.analyze for s in steps)


def test_missing_tables_are_reported_and_the_others_still_planned() -> None:
    gone, there = TableName("x", "nope"), TableName(None, "ai_threads")
    steps, missing = plan_vacuum([gone, there], {gone: None, there: THREADS}, analyze=True)
    assert missing == [gone]
    assert [s.qualified for s in steps] == ["public.ai_threads"]


def test_a_partition_listed_beside_its_parent_is_vacuumed_once() -> None:
    parent, leaf = TableName(None, "ai_messages"), TableName(None, "ai_messages_default")
    found = {parent: MESSAGES, leaf: Relation("public", "ai_messages_default")}
    steps, _ = plan_vacuum([parent, leaf], found, analyze=False)
    assert [s.qualified for s in steps].count("public.ai_messages_default") == 1
