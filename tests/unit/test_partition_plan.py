"""The partition planner: spec + observed catalog + now -> ordered actions. No server."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from partition_trees import (
    default_partition,
    defs,
    leaf,
    month,
    month_partition,
    observed,
    observed_index,
    parent,
    spec,
    steady_state,
    time_bound,
)

from example_indexes import SEARCH_INDEX, THREAD_INDEX
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.actions import (
    Action,
    ArchivePartition,
    AttachIndex,
    AttachOrphan,
    BuildIndex,
    CreateArchiveTable,
    CreateParentIndex,
    CreatePartition,
    DropInvalidIndex,
    DropPartition,
    ExportPartition,
    FinalizeDetach,
)
from lokifi_storage.domain.partitions.catalog import (
    Bound,
    ObservedRelation,
    ObservedTable,
    QName,
)
from lokifi_storage.domain.partitions.index_defs import derived_name, relation_suffix
from lokifi_storage.domain.partitions.pack import PackPartition
from lokifi_storage.domain.partitions.pack_layout import segment_comment
from lokifi_storage.domain.partitions.plan import ARCHIVE_MARKER, BOUNDS_CHECK, plan_table

UTC = dt.UTC
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
CURRENT = [(2026, 1), (2026, 2), (2026, 3), (2026, 4)]


def created_names(actions: object) -> list[str]:
    return [a.partition.qname.name for a in actions if isinstance(a, CreatePartition)]  # type: ignore[attr-defined]


# --- the table itself ----------------------------------------------------------------------


def test_missing_table_is_reported_with_what_to_create() -> None:
    plan = plan_table(spec(), observed(None), NOW)
    assert plan.actions == ()
    assert [p.reason for p in plan.problems] == [Reason.TABLE_NOT_FOUND]
    assert "PARTITION BY RANGE (created_at)" in plan.problems[0].message


def test_plain_table_where_partitions_are_wanted_is_reported_not_touched() -> None:
    plain = ObservedRelation(qname=QName("public", "ai_messages"), kind="r")
    plan = plan_table(spec(), observed(plain), NOW)
    assert plan.actions == ()
    assert plan.problems[0].reason == Reason.TABLE_NOT_PARTITIONED
    assert "PARTITION BY RANGE (created_at)" in plan.problems[0].message


@pytest.mark.parametrize(
    ("strategy", "columns", "types"),
    [
        ("l", ("created_at",), ("timestamp with time zone",)),
        ("h", ("created_at",), ("timestamp with time zone",)),
        ("r", ("user_id",), ("bigint",)),
        ("r", ("created_at", "user_id"), ("timestamp with time zone", "bigint")),
        ("r", ("created_at",), ("bigint",)),
    ],
)
def test_table_partitioned_another_way_is_a_key_mismatch(
    strategy: str, columns: tuple[str, ...], types: tuple[str, ...]
) -> None:
    other = ObservedRelation(
        qname=QName("public", "ai_messages"),
        kind="p",
        key_strategy=strategy,
        key_columns=columns,
        key_types=types,
    )
    plan = plan_table(spec(), observed(other), NOW)
    assert plan.actions == ()
    assert plan.problems[0].reason == Reason.PARTITION_KEY_MISMATCH


# --- making partitions ahead ----------------------------------------------------------------


def test_empty_partitioned_table_gets_now_and_premake_ahead_then_default() -> None:
    """Without a DEFAULT yet, new months attach without locking or scanning anything else (no
    rows can be waiting): the DEFAULT comes last."""
    plan = plan_table(spec(), observed(parent([])), NOW)
    assert created_names(plan.actions) == [
        "ai_messages_p2026_01",
        "ai_messages_p2026_02",
        "ai_messages_p2026_03",
        "ai_messages_p2026_04",
        "ai_messages_default",
    ]
    first = plan.actions[0]
    assert isinstance(first, CreatePartition)
    assert first.partition.bound == time_bound(*month(2026, 1))
    assert first.move_from is None
    assert "search" not in first.columns  # generated columns are never inserted into
    assert plan.summary.count == 0


def test_nothing_to_do_plans_nothing() -> None:
    table = spec(indexes=[THREAD_INDEX, SEARCH_INDEX])
    plan = plan_table(table, steady_state(table, CURRENT), NOW)
    assert plan.actions == ()
    assert plan.deferred == ()
    assert plan.problems == ()
    assert plan.summary.count == 4
    assert plan.summary.oldest == "2026-01-01"
    assert plan.summary.newest == "2026-04-01"


def test_the_month_boundary_is_taken_in_utc_not_local_time() -> None:
    table = spec()
    new_york_evening = dt.datetime(2026, 1, 31, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    plan = plan_table(table, steady_state(table, CURRENT), new_york_evening)
    assert created_names(plan.actions) == ["ai_messages_p2026_05"]


def test_year_boundary_premake_names_next_years_months() -> None:
    table = spec(premake=2)
    plan = plan_table(
        table,
        observed(parent([default_partition()])),
        dt.datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
    )
    assert created_names(plan.actions) == [
        "ai_messages_p2026_12",
        "ai_messages_p2027_01",
        "ai_messages_p2027_02",
    ]


@pytest.mark.parametrize(
    ("interval", "names"),
    [
        ("day", ["ai_messages_p2026_01_15", "ai_messages_p2026_01_16"]),
        ("week", ["ai_messages_p2026w03", "ai_messages_p2026w04"]),
        ("quarter", ["ai_messages_p2026q1", "ai_messages_p2026q2"]),
        ("year", ["ai_messages_p2026", "ai_messages_p2027"]),
    ],
)
def test_every_interval_names_its_partitions(interval: str, names: list[str]) -> None:
    table = spec(partitionBy={"column": "created_at", "interval": interval}, premake=1)
    plan = plan_table(table, observed(parent([default_partition()])), NOW)
    assert created_names(plan.actions) == names


def test_rows_waiting_in_default_get_their_partition_and_are_moved() -> None:
    table = spec()
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT[1:])]),
        default_buckets=(
            (dt.datetime(2025, 11, 1, tzinfo=UTC), 7),
            (dt.datetime(2026, 1, 1, tzinfo=UTC), 5),
        ),
    )
    plan = plan_table(table, state, NOW)
    creates = [a for a in plan.actions if isinstance(a, CreatePartition)]
    assert [(c.partition.qname.name, c.rows_to_move) for c in creates] == [
        ("ai_messages_p2025_11", 7),
        ("ai_messages_p2026_01", 5),
    ]
    assert all(c.move_from == QName("public", "ai_messages_default") for c in creates)
    assert plan.summary.in_default == 12


def test_a_partition_overlapping_a_planned_range_is_left_alone_and_noted() -> None:
    table = spec()
    odd = leaf(
        "ai_messages_custom",
        time_bound(dt.datetime(2026, 1, 10, tzinfo=UTC), dt.datetime(2026, 2, 10, tzinfo=UTC)),
    )
    plan = plan_table(table, observed(parent([default_partition(), odd])), NOW)
    assert created_names(plan.actions) == ["ai_messages_p2026_03", "ai_messages_p2026_04"]
    assert any("ai_messages_custom" in n for n in plan.notes)


def test_names_that_postgres_would_truncate_are_refused() -> None:
    table = spec(name="a" * 55)
    relation = parent([], name="a" * 55)
    plan = plan_table(table, ObservedTable(qname=relation.qname, relation=relation), NOW)
    assert plan.actions == ()
    assert plan.problems[0].reason == Reason.INVALID_SPEC


# --- sub-partitions --------------------------------------------------------------------------


def test_new_partitions_are_split_into_user_ranges_with_their_own_default() -> None:
    table = spec(subpartitionBy={"column": "user_id", "rangeSize": 1000, "count": 2}, premake=1)
    plan = plan_table(table, observed(parent([default_partition()])), NOW)
    create = next(a for a in plan.actions if isinstance(a, CreatePartition))
    assert create.partition.sub_column == "user_id"
    assert [(c.qname.name, c.bound) for c in create.partition.children] == [
        ("ai_messages_p2026_01_s0", Bound("0", "1000")),
        ("ai_messages_p2026_01_s1", Bound("1000", "2000")),
        ("ai_messages_p2026_01_sdefault", Bound(is_default=True)),
    ]


def test_a_sub_range_missing_from_an_existing_partition_is_added_from_its_default() -> None:
    table = spec(subpartitionBy={"column": "user_id", "rangeSize": 1000, "count": 2}, premake=1)
    jan = ObservedRelation(
        qname=QName("public", "ai_messages_p2026_01"),
        kind="p",
        bound=time_bound(*month(2026, 1)),
        key_strategy="r",
        key_columns=("user_id",),
        key_types=("bigint",),
        children=(
            leaf("ai_messages_p2026_01_s0", Bound("0", "1000")),
            leaf("ai_messages_p2026_01_sdefault", Bound(is_default=True)),
        ),
    )
    plan = plan_table(table, observed(parent([default_partition(), jan])), NOW)
    create, february = plan.actions
    assert isinstance(create, CreatePartition)
    assert isinstance(february, CreatePartition)
    assert february.partition.qname.name == "ai_messages_p2026_02"
    assert create.parent == jan.qname
    assert create.partition.qname.name == "ai_messages_p2026_01_s1"
    assert create.column == "user_id"
    assert create.move_from == QName("public", "ai_messages_p2026_01_sdefault")


def test_sub_partitioning_on_a_text_column_is_refused() -> None:
    table = spec(subpartitionBy={"column": "content", "rangeSize": 10, "count": 2})
    plan = plan_table(table, observed(parent([default_partition()])), NOW)
    assert plan.problems[0].reason == Reason.PARTITION_KEY_MISMATCH


# --- indexes ---------------------------------------------------------------------------------


def test_new_index_on_a_table_with_partitions_is_built_without_long_locks() -> None:
    table = spec(indexes=[THREAD_INDEX])
    state = observed(parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]))
    plan = plan_table(table, state, NOW)
    kinds = [type(a).__name__ for a in plan.actions]
    assert kinds[0] == "CreateParentIndex"
    assert kinds.count("BuildIndex") == 5  # four months and DEFAULT
    assert kinds.count("AttachIndex") == 5
    builds = [a for a in plan.actions if isinstance(a, BuildIndex)]
    assert builds[0].name == "idx_ai_messages_user_thread_time_default"
    attaches = [a for a in plan.actions if isinstance(a, AttachIndex)]
    assert {a.parent_index for a in attaches} == {QName("public", THREAD_INDEX["name"])}


def test_parent_index_comes_before_new_partitions_so_they_are_born_indexed() -> None:
    table = spec(indexes=[THREAD_INDEX])
    plan = plan_table(table, observed(parent([])), NOW)
    kinds = [type(a).__name__ for a in plan.actions]
    assert kinds.index("CreateParentIndex") < kinds.index("CreatePartition", 1)
    assert "BuildIndex" not in kinds


def test_invalid_index_left_by_a_crashed_build_is_dropped_and_rebuilt() -> None:
    table = spec(indexes=[THREAD_INDEX])
    (d,) = defs(table)
    name = derived_name(d.name, "p2026_01")
    broken = month_partition(2026, 1)
    broken = ObservedRelation(
        **{**broken.__dict__, "indexes": (observed_index(d, name, valid=False),)}
    )
    others = [month_partition(y, m, table=table) for y, m in CURRENT[1:]]
    state = observed(
        parent([default_partition(table), broken, *others], table=table, valid_indexes=False)
    )
    plan = plan_table(table, state, NOW)
    assert [type(a).__name__ for a in plan.actions] == [
        "DropInvalidIndex",
        "BuildIndex",
        "AttachIndex",
    ]
    assert plan.actions[0] == DropInvalidIndex(
        QName("public", "ai_messages"), QName("public", name)
    )


def test_built_but_unattached_index_is_only_attached() -> None:
    table = spec(indexes=[THREAD_INDEX])
    (d,) = defs(table)
    name = derived_name(d.name, "p2026_01")
    jan = month_partition(2026, 1)
    jan = ObservedRelation(**{**jan.__dict__, "indexes": (observed_index(d, name),)})
    others = [month_partition(y, m, table=table) for y, m in CURRENT[1:]]
    state = observed(parent([default_partition(table), jan, *others], table=table))
    plan = plan_table(table, state, NOW)
    assert plan.actions == (
        AttachIndex(QName("public", "ai_messages"), QName("public", d.name), QName("public", name)),
    )


def test_index_with_the_spec_name_but_other_columns_is_reported() -> None:
    table = spec(indexes=[THREAD_INDEX])
    other = spec(indexes=[{**THREAD_INDEX, "columns": ["user_id"]}])
    state = steady_state(other, CURRENT)
    plan = plan_table(table, state, NOW)
    assert [p.reason for p in plan.problems] == [Reason.INDEX_MISMATCH]
    assert plan.actions == ()


def test_plain_table_without_partitioning_gets_its_indexes_concurrently() -> None:
    threads = spec(
        name="ai_threads",
        partitionBy=None,
        premake=3,
        indexes=[
            {
                "name": "idx_active_threads",
                "columns": ["user_id", "updated_at"],
                "where": {"column": "is_archived", "equals": False},
            }
        ],
    )
    plain = ObservedRelation(qname=QName("public", "ai_threads"), kind="r")
    plan = plan_table(threads, ObservedTable(qname=plain.qname, relation=plain), NOW)
    (build,) = plan.actions
    assert isinstance(build, BuildIndex)
    assert build.name == "idx_active_threads"
    (d,) = defs(threads)
    done = ObservedRelation(
        qname=plain.qname, kind="r", indexes=(observed_index(d, "idx_active_threads"),)
    )
    assert plan_table(threads, ObservedTable(qname=plain.qname, relation=done), NOW).actions == ()
    broken = ObservedRelation(
        qname=plain.qname,
        kind="r",
        indexes=(observed_index(d, "idx_active_threads", valid=False),),
    )
    kinds = [
        type(a).__name__
        for a in plan_table(threads, ObservedTable(qname=plain.qname, relation=broken), NOW).actions
    ]
    assert kinds == ["DropInvalidIndex", "BuildIndex"]


# --- archive, compress, retention ------------------------------------------------------------

OLD = [(2024, 11), (2024, 12), (2025, 1)]


def archived_table() -> ObservedRelation:
    return parent([], schema="archive")


def test_partitions_wholly_older_than_after_days_are_archived_not_copied() -> None:
    table = spec(archive={"afterDays": 365, "schema": "archive"})
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in OLD + CURRENT)]),
        archive=archived_table(),
    )
    plan = plan_table(table, state, NOW)
    archives = [a for a in plan.actions if isinstance(a, ArchivePartition)]
    # 2025-01 ends 2025-02-01, which is less than 365 days before 2026-01-15: not yet.
    assert [a.partition.name for a in archives] == ["ai_messages_p2024_11", "ai_messages_p2024_12"]
    first = archives[0]
    assert first.archive == QName("archive", "ai_messages")
    assert first.leaves_needing_check == (first.partition,)  # made before the operator
    assert first.leaves_to_validate == (first.partition,)
    assert not first.concurrently  # a DEFAULT partition exists: PostgreSQL refuses CONCURRENTLY


def test_archive_table_is_created_first_when_missing() -> None:
    table = spec(archive={"afterDays": 365})
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in OLD + CURRENT)])
    )
    plan = plan_table(table, state, NOW)
    kinds = [type(a).__name__ for a in plan.actions]
    assert kinds[0] == "CreateArchiveTable"
    assert kinds.count("ArchivePartition") == 2
    assert isinstance(plan.actions[0], CreateArchiveTable)
    assert plan.actions[0].archive == QName("archive", "ai_messages")


def test_a_partition_that_already_has_its_bounds_check_is_not_given_another() -> None:
    table = spec(archive={"afterDays": 365})
    checked = month_partition(2024, 11, checks=(BOUNDS_CHECK,))
    state = observed(parent([default_partition(), checked]), archive=archived_table())
    (archive,) = [
        a for a in plan_table(table, state, NOW).actions if isinstance(a, ArchivePartition)
    ]
    assert archive.leaves_needing_check == ()
    assert archive.leaves_to_validate == ()


def test_a_check_added_not_valid_by_an_interrupted_run_is_validated_not_added_again() -> None:
    table = spec(archive={"afterDays": 365})
    half = month_partition(2024, 11)
    half = ObservedRelation(**{**half.__dict__, "unvalidated_checks": (BOUNDS_CHECK,)})
    state = observed(parent([default_partition(), half]), archive=archived_table())
    (archive,) = [
        a for a in plan_table(table, state, NOW).actions if isinstance(a, ArchivePartition)
    ]
    assert archive.leaves_needing_check == ()
    assert archive.leaves_to_validate == (half.qname,)


def test_archived_months_past_compress_after_days_are_packed_whole_by_the_job() -> None:
    table = spec(
        archive={"afterDays": 365, "compressAfterDays": 400},
        subpartitionBy={"column": "user_id", "rangeSize": 100, "count": 2},
    )
    october = month_partition(2024, 10, schema="archive", checks=(BOUNDS_CHECK,))
    sub_october = ObservedRelation(
        **{
            **october.__dict__,
            "kind": "p",
            "key_columns": ("user_id",),
            "children": (
                leaf("ai_messages_p2024_10_s0", Bound("0", "100"), schema="archive"),
                leaf("ai_messages_p2024_10_sdefault", Bound(is_default=True), schema="archive"),
            ),
        }
    )
    archived = parent(
        [
            sub_october,
            month_partition(2024, 11, schema="archive", checks=(BOUNDS_CHECK,), lz4=True),
            month_partition(2024, 12, schema="archive", checks=(BOUNDS_CHECK,)),
        ],
        schema="archive",
    )
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]),
        archive=archived,
    )
    plan = plan_table(table, state, NOW)
    assert plan.actions == ()
    # One action per month, sub-partitions included; an lz4-rewritten month is packed too.
    packs = plan.deferred
    assert all(isinstance(a, PackPartition) for a in packs)
    assert [a.month for a in packs if isinstance(a, PackPartition)] == [
        QName("archive", "ai_messages_p2024_10"),
        QName("archive", "ai_messages_p2024_11"),
    ]
    first = packs[0]
    assert isinstance(first, PackPartition)
    assert first.layout.segment == ("user_id", "thread_id")
    assert first.layout.compression == "pglz"
    assert first.layout.archive == QName("archive", "ai_messages")
    assert first.bound.lower == "2024-10-01 00:00:00+00"
    assert plan.summary.pending_compress == 2
    assert plan.summary.archived == 3


def test_packed_months_count_as_archived_and_are_not_packed_again() -> None:
    table = spec(
        archive={
            "afterDays": 365,
            "compressAfterDays": 400,
            "packCompression": "lz4",
            "packRows": 64,
        }
    )
    packed_table = ObservedRelation(
        qname=QName("archive", "ai_messages_packed"),
        kind="p",
        comment=segment_comment(("user_id", "thread_id")),
        children=(month_partition(2024, 10, schema="archive"),),
    )
    archived = parent([month_partition(2024, 11, schema="archive")], schema="archive")
    state = ObservedTable(
        qname=QName("public", "ai_messages"),
        relation=parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]),
        archive=archived,
        packed=packed_table,
    )
    plan = plan_table(table, state, NOW)
    (pack,) = plan.deferred
    assert isinstance(pack, PackPartition)
    assert pack.month.name == "ai_messages_p2024_11"
    assert pack.layout.compression == "lz4"
    assert pack.layout.pack_rows == 64
    assert plan.summary.archived == 2
    assert plan.notes == ()


def test_a_packed_table_grouped_otherwise_keeps_its_grouping_and_says_so() -> None:
    table = spec(archive={"afterDays": 365, "compressAfterDays": 400, "segmentBy": ["user_id"]})
    packed_table = ObservedRelation(
        qname=QName("archive", "ai_messages_packed"),
        kind="p",
        comment=segment_comment(("user_id", "thread_id")),
    )
    state = ObservedTable(
        qname=QName("public", "ai_messages"),
        relation=parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]),
        archive=parent([month_partition(2024, 11, schema="archive")], schema="archive"),
        packed=packed_table,
    )
    plan = plan_table(table, state, NOW)
    (pack,) = plan.deferred
    assert isinstance(pack, PackPartition)
    assert pack.layout.segment == ("user_id", "thread_id")
    assert any("groups by user_id, thread_id" in note for note in plan.notes)


def test_a_segment_column_the_table_lacks_is_a_problem_not_a_pack() -> None:
    table = spec(archive={"afterDays": 365, "compressAfterDays": 400, "segmentBy": ["tenant"]})
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]),
        archive=parent([month_partition(2024, 11, schema="archive")], schema="archive"),
    )
    plan = plan_table(table, state, NOW)
    assert plan.deferred == ()
    (problem,) = plan.problems
    assert problem.reason == "InvalidSpec"
    assert "archive.segmentBy names tenant" in problem.message


def test_expired_partitions_are_exported_by_the_job_never_dropped_here() -> None:
    table = spec(
        archive={"afterDays": 30},
        retention={
            "dropAfterDays": 60,
            "exportTo": {"bucket": "lokifi-archive", "prefix": "exports"},
        },
    )
    archived = parent([month_partition(2025, 10, schema="archive")], schema="archive")
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]),
        archive=archived,
    )
    plan = plan_table(table, state, NOW, database="lokifi")
    assert not any(isinstance(a, DropPartition) for a in plan.actions)
    (export,) = plan.deferred
    assert isinstance(export, ExportPartition)
    assert export.key == "exports/lokifi/archive/ai_messages_p2025_10.csv.zst"
    assert export.storage_class == "DEEP_ARCHIVE"
    assert plan.summary.pending_export == 1


def test_expired_partitions_are_dropped_only_when_the_spec_says_so_explicitly() -> None:
    kept = spec(retention={"dropAfterDays": 60})
    dropped = spec(retention={"dropAfterDays": 60, "dropWithoutExport": True})
    state = observed(
        parent(
            [
                default_partition(),
                month_partition(2025, 10),
                *(month_partition(y, m) for y, m in CURRENT),
            ]
        )
    )
    plan_kept = plan_table(kept, state, NOW)
    assert plan_kept.actions == ()
    assert any("past retention" in n for n in plan_kept.notes)
    (drop,) = plan_table(dropped, state, NOW).actions
    assert isinstance(drop, DropPartition)
    assert drop.partition == QName("public", "ai_messages_p2025_10")


def test_a_partition_due_for_both_archive_and_drop_is_only_dropped() -> None:
    table = spec(
        archive={"afterDays": 30}, retention={"dropAfterDays": 60, "dropWithoutExport": True}
    )
    state = observed(
        parent([default_partition(), month_partition(2025, 10)]), archive=archived_table()
    )
    plan = plan_table(table, state, NOW)
    assert not any(isinstance(a, ArchivePartition) for a in plan.actions)
    assert any(isinstance(a, DropPartition) for a in plan.actions)


def test_an_interrupted_concurrent_detach_is_finalized_first() -> None:
    table = spec()
    pending = month_partition(2026, 1, detach_pending=True)
    state = observed(
        parent([default_partition(), pending, *(month_partition(y, m) for y, m in CURRENT[1:])])
    )
    plan = plan_table(table, state, NOW)
    assert isinstance(plan.actions[0], FinalizeDetach)
    assert plan.actions[0].partition == pending.qname


def test_a_partition_detached_by_an_interrupted_run_is_attached_to_the_archive() -> None:
    table = spec(archive={"afterDays": 365})
    orphan = ObservedRelation(
        qname=QName("public", "ai_messages_p2024_06"),
        kind="r",
        checks=(BOUNDS_CHECK,),
        unvalidated_checks=(ARCHIVE_MARKER,),
    )
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]),
        archive=archived_table(),
        orphans=(orphan,),
    )
    plan = plan_table(table, state, NOW)
    (attach,) = plan.actions
    assert isinstance(attach, AttachOrphan)
    assert attach.bound == time_bound(*month(2024, 6))
    # The same table without the operator's marker was detached on purpose: left alone.
    unmarked = ObservedRelation(qname=orphan.qname, kind="r", checks=(BOUNDS_CHECK,))
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]),
        archive=archived_table(),
        orphans=(unmarked,),
    )
    plan = plan_table(table, state, NOW)
    assert plan.actions == ()
    assert any("not detached by the operator" in n for n in plan.notes)
    young = ObservedRelation(qname=QName("public", "ai_messages_p2025_12"), kind="r")
    state = observed(
        parent([default_partition(), *(month_partition(y, m) for y, m in CURRENT)]),
        archive=archived_table(),
        orphans=(young,),
    )
    plan = plan_table(table, state, NOW)
    assert plan.actions == ()
    assert any("left alone" in n for n in plan.notes)


def test_every_planned_action_describes_itself() -> None:
    table = spec(
        indexes=[THREAD_INDEX],
        archive={"afterDays": 30, "compressAfterDays": 45},
        retention={"dropAfterDays": 100, "exportTo": {"bucket": "b-archive"}},
    )
    archived = parent(
        [month_partition(2025, 9, schema="archive"), month_partition(2025, 11, schema="archive")],
        schema="archive",
    )
    state = observed(
        parent([month_partition(2025, 10), month_partition(2025, 12)]),
        archive=archived,
        default_buckets=((dt.datetime(2025, 8, 1, tzinfo=UTC), 3),),
    )
    plan = plan_table(table, state, NOW)
    kinds = {type(a).__name__ for a in plan.actions + plan.deferred}
    assert {"CreatePartition", "CreateParentIndex", "BuildIndex", "AttachIndex"} <= kinds
    assert {"ArchivePartition", "PackPartition", "ExportPartition"} <= kinds
    for action in plan.actions + plan.deferred:
        assert action.describe()
    assert isinstance(plan.actions[0], CreateParentIndex)  # partitions are born indexed
    creates = [a for a in plan.actions if isinstance(a, CreatePartition)]
    assert creates[-1].partition.bound.is_default  # after the months, which need no DEFAULT
    assert all(c.move_from is None for c in creates)


# --- properties ------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2090, 12, 31),
    timezones=st.sampled_from(
        [UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone(dt.timedelta(hours=-11))]
    ),
)


def applied(table_spec: TableSpec, actions: tuple[Action, ...]) -> ObservedTable:
    """The catalog after the CreatePartition actions ran: what PostgreSQL would then show."""
    children = []
    for action in actions:
        assert isinstance(action, CreatePartition | CreateParentIndex)
        if isinstance(action, CreatePartition):
            suffix = relation_suffix("ai_messages", action.partition.qname.name)
            indexes = tuple(
                observed_index(d, derived_name(d.name, suffix), QName("public", d.name))
                for d in defs(table_spec)
            )
            children.append(
                leaf(action.partition.qname.name, action.partition.bound, indexes=indexes)
            )
    return observed(parent(children, table=table_spec))


@given(instants, st.sampled_from(["day", "week", "month", "quarter", "year"]), st.integers(1, 24))
def test_planning_again_after_a_plan_ran_plans_nothing(
    now: dt.datetime, interval: str, premake: int
) -> None:
    table = spec(
        partitionBy={"column": "created_at", "interval": interval},
        premake=premake,
        indexes=[THREAD_INDEX],
    )
    first = plan_table(table, observed(parent([])), now)
    state = applied(table, first.actions)
    second = plan_table(table, state, now)
    assert second.actions == ()
    assert second.problems == ()
    assert second.summary.count == premake + 1
    assert state.relation is not None
    ranges = sorted(
        pair
        for c in state.relation.children
        if c.bound is not None and (pair := c.bound.time_range()) is not None
    )
    assert ranges[0][0] <= now.astimezone(UTC) < ranges[0][1]
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start
