"""The SQL of partition actions: quoting, statement order, transaction boundaries. No server."""

from __future__ import annotations

import datetime as dt

import pytest
from partition_trees import (
    month,
    observed,
    parent,
    spec,
    time_bound,
)
from psycopg import sql

from example_indexes import SEARCH_INDEX, THREAD_INDEX
from lokifi_storage.api.spec import IndexSpec
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
    NewRelation,
)
from lokifi_storage.domain.partitions.catalog import Bound, IndexKey, ObservedIndex, QName
from lokifi_storage.domain.partitions.index_defs import (
    IndexDef,
    IndexKeyDef,
    derived_name,
    index_def_from_spec,
    matches,
)
from lokifi_storage.domain.partitions.plan import plan_table
from lokifi_storage.domain.partitions.statements import Check, Guard, Step, index_sql
from lokifi_storage.domain.partitions.steps import steps_for

T = QName("public", "ai_messages")
DEFAULT = QName("public", "ai_messages_default")
JAN = QName("public", "ai_messages_p2026_01")
THREAD = index_def_from_spec(IndexSpec.model_validate(THREAD_INDEX))
SEARCH = index_def_from_spec(IndexSpec.model_validate(SEARCH_INDEX))


def text(statement: object) -> str:
    if isinstance(statement, Check):
        return "CHECK: " + statement.query.as_string()
    if isinstance(statement, Guard):
        return "IF: " + statement.query.as_string()
    assert isinstance(statement, sql.Composable)
    return statement.as_string()


def texts(step: Step) -> list[str]:
    return [text(s) for s in step.statements]


def create_january(**overrides: object) -> CreatePartition:
    fields: dict[str, object] = {
        "parent": T,
        "partition": NewRelation(JAN, time_bound(*month(2026, 1))),
        "column": "created_at",
        "move_from": DEFAULT,
        "columns": ("id", "user_id", "created_at", "content"),
        "indexes": (THREAD, SEARCH),
    }
    fields.update(overrides)
    return CreatePartition(T, **fields)  # type: ignore[arg-type]


LOCK_PARENT = 'LOCK TABLE ONLY "public"."ai_messages" IN SHARE ROW EXCLUSIVE MODE'
LOCK_DEFAULT = 'LOCK TABLE "public"."ai_messages_default" IN SHARE ROW EXCLUSIVE MODE'
CREATE_JANUARY = (
    'CREATE TABLE "public"."ai_messages_p2026_01" (LIKE "public"."ai_messages" '
    "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION "
    'INCLUDING GENERATED, CONSTRAINT "lokifi_bounds" CHECK'
    ' ("created_at" IS NOT NULL AND "created_at" >= \'2026-01-01 00:00:00+00\''
    " AND \"created_at\" < '2026-02-01 00:00:00+00'))"
)  # made with the empty table: valid without a scan
MOVE_JANUARY = (
    'WITH moved AS (DELETE FROM "public"."ai_messages_default"'
    ' WHERE "created_at" IS NOT NULL'
    " AND \"created_at\" >= '2026-01-01 00:00:00+00'"
    " AND \"created_at\" < '2026-02-01 00:00:00+00'"
    ' RETURNING "id", "user_id", "created_at", "content")'
    ' INSERT INTO "public"."ai_messages_p2026_01" ("id", "user_id", "created_at", "content")'
    ' SELECT "id", "user_id", "created_at", "content" FROM moved'
)
JANUARY_INDEXES = [
    'CREATE INDEX "idx_ai_messages_user_thread_time_p2026_01"'
    ' ON "public"."ai_messages_p2026_01"'
    ' USING btree ("user_id", "thread_id", "created_at" DESC)',
    'CREATE INDEX "idx_ai_messages_content_search_p2026_01" ON "public"."ai_messages_p2026_01"'
    " USING gin (to_tsvector('english'::regconfig, \"content\"))",
]
ATTACH_JANUARY = (
    'ALTER TABLE "public"."ai_messages" ATTACH PARTITION "public"."ai_messages_p2026_01"'
    " FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')"
)


def test_new_partition_moves_default_rows_and_attaches_in_one_transaction() -> None:
    """Rows waiting in DEFAULT: the parent is locked first, the indexes built after the move."""
    (step,) = steps_for(create_january(rows_to_move=40))
    assert step.transaction
    assert texts(step) == [
        LOCK_PARENT,
        LOCK_DEFAULT,
        CREATE_JANUARY,
        MOVE_JANUARY,
        *JANUARY_INDEXES,
        ATTACH_JANUARY,
    ]
    assert step.lock_target == T


def test_new_partition_with_no_rows_to_move_is_built_before_the_parent_is_locked() -> None:
    """Nothing expected in DEFAULT: table and indexes first (nobody sees them), so only the
    lock, the move of whatever arrived meanwhile and the ATTACH wait for other writers."""
    (step,) = steps_for(create_january())
    assert step.transaction
    assert texts(step) == [
        CREATE_JANUARY,
        *JANUARY_INDEXES,
        LOCK_PARENT,
        LOCK_DEFAULT,
        MOVE_JANUARY,
        ATTACH_JANUARY,
    ]
    assert step.lock_target == T


def test_the_default_partition_is_attached_as_default_without_a_move() -> None:
    action = create_january(
        partition=NewRelation(DEFAULT, Bound(is_default=True)), move_from=None, indexes=()
    )
    (step,) = steps_for(action)
    lines = texts(step)
    assert len(lines) == 2
    assert lines[-1].endswith('ATTACH PARTITION "public"."ai_messages_default" DEFAULT')


def test_sub_partitioned_partition_indexes_each_leaf_and_attaches_them() -> None:
    sub = NewRelation(
        JAN,
        time_bound(*month(2026, 1)),
        sub_column="user_id",
        children=(
            NewRelation(QName("public", "ai_messages_p2026_01_s0"), Bound("0", "1000")),
            NewRelation(QName("public", "ai_messages_p2026_01_sdefault"), Bound(is_default=True)),
        ),
    )
    (step,) = steps_for(create_january(partition=sub, indexes=(THREAD,)))
    lines = texts(step)
    assert lines[0].endswith('PARTITION BY RANGE ("user_id")')
    assert lines[1] == (
        'CREATE TABLE "public"."ai_messages_p2026_01_s0"'
        ' PARTITION OF "public"."ai_messages_p2026_01"'
        " FOR VALUES FROM ('0') TO ('1000')"
    )
    assert "DEFAULT" in lines[2]
    joined = "\n".join(lines)
    assert 'CREATE INDEX "idx_ai_messages_user_thread_time_p2026_01" ON ONLY' in joined
    assert (
        'ALTER INDEX "public"."idx_ai_messages_user_thread_time_p2026_01" ATTACH PARTITION'
        ' "public"."idx_ai_messages_user_thread_time_p2026_01_s0"' in joined
    )


def test_concurrent_index_builds_run_outside_a_transaction_and_clean_up_after_failure() -> None:
    (step,) = steps_for(BuildIndex(T, JAN, THREAD, "idx_x_p2026_01"))
    assert not step.transaction
    assert texts(step)[0].startswith('CREATE INDEX CONCURRENTLY "idx_x_p2026_01" ON "public"')
    guard, drop = step.cleanup
    # Only a leftover: INVALID, and no other session building an index of that name.
    assert isinstance(guard, Guard)
    guard_text = guard.query.as_string()
    assert "NOT x.indisvalid" in guard_text
    assert "pg_stat_progress_create_index" in guard_text
    assert "'idx_x_p2026_01'" in guard_text
    assert isinstance(drop, sql.Composable)
    assert drop.as_string() == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_x_p2026_01"'


def test_parent_index_is_created_on_only_the_parent() -> None:
    (step,) = steps_for(CreateParentIndex(T, T, THREAD, THREAD.name))
    assert texts(step) == [
        'CREATE INDEX "idx_ai_messages_user_thread_time" ON ONLY "public"."ai_messages"'
        ' USING btree ("user_id", "thread_id", "created_at" DESC)'
    ]


def test_partial_index_and_nulls_order_are_rendered() -> None:
    index = IndexDef(
        "idx_active",
        keys=(IndexKeyDef("user_id"), IndexKeyDef("updated_at", desc=True, nulls_first=False)),
        where_column="is_archived",
        where_value=False,
    )
    assert index_sql(index, "idx_active", QName("public", "ai_threads")).as_string() == (
        'CREATE INDEX "idx_active" ON "public"."ai_threads" USING btree ("user_id",'
        ' "updated_at" DESC NULLS LAST) WHERE "is_archived" = false'
    )
    quoted = IndexDef("i", keys=(IndexKeyDef("status"),), where_column="status", where_value="it's")
    assert index_sql(quoted, "i", T).as_string().endswith("WHERE \"status\" = 'it''s'")


def test_hostile_names_are_quoted_never_spliced() -> None:
    evil = QName("public", 'x"; DROP TABLE users; --')
    (step,) = steps_for(DropPartition(T, T, evil, Bound("a", "b")))
    assert texts(step) == ['DROP TABLE "public"."x""; DROP TABLE users; --"']
    index = IndexDef(
        "i", fulltext_column="content", fulltext_language="english'); DROP TABLE t; --"
    )
    rendered = index_sql(index, "i", T).as_string()
    assert "'english''); DROP TABLE t; --'::regconfig" in rendered


def test_hostile_names_are_refused_by_the_spec_before_any_sql() -> None:
    with pytest.raises(ValueError, match="not a valid"):
        spec(name='ai_messages"; DROP TABLE users; --')
    with pytest.raises(ValueError, match="not a valid"):
        spec(partitionBy={"column": "created_at); DROP TABLE x; --", "interval": "month"})


def archive_action(
    concurrently: bool, *, born_checked: bool = False, marked: bool = False
) -> ArchivePartition:
    leaves = () if born_checked else (JAN,)
    return ArchivePartition(
        T,
        parent=T,
        partition=JAN,
        archive=QName("archive", "ai_messages"),
        column="created_at",
        bound=time_bound(*month(2026, 1)),
        leaves_needing_check=leaves,
        leaves_to_validate=leaves,
        descendants=(),
        concurrently=concurrently,
        marked=marked,
    )


def test_archiving_a_partition_born_with_its_check_is_one_metadata_transaction() -> None:
    (move,) = steps_for(archive_action(concurrently=False, born_checked=True))
    assert move.transaction
    assert [line.split(" ")[3:5] for line in texts(move)] == [
        ["DETACH", "PARTITION"],
        ["SET", "SCHEMA"],
        ["ATTACH", "PARTITION"],
    ]


def test_archive_adds_a_validated_check_then_moves_the_partition_in_one_transaction() -> None:
    check, validate, move = steps_for(archive_action(concurrently=False))
    assert check.transaction
    assert texts(check)[0].startswith(
        'ALTER TABLE "public"."ai_messages_p2026_01" ADD CONSTRAINT "lokifi_bounds" CHECK ('
    )
    assert texts(check)[0].endswith("NOT VALID")
    assert not validate.transaction
    assert texts(validate) == [
        'ALTER TABLE "public"."ai_messages_p2026_01" VALIDATE CONSTRAINT "lokifi_bounds"'
    ]
    assert move.transaction
    assert texts(move) == [
        'ALTER TABLE "public"."ai_messages" DETACH PARTITION "public"."ai_messages_p2026_01"',
        'ALTER TABLE "public"."ai_messages_p2026_01" SET SCHEMA "archive"',
        'ALTER TABLE "archive"."ai_messages" ATTACH PARTITION "archive"."ai_messages_p2026_01"'
        " FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')",
    ]


def test_archive_without_a_default_detaches_concurrently_outside_a_transaction() -> None:
    _, _, mark, detach, attach = steps_for(archive_action(concurrently=True))
    assert texts(mark) == [
        'ALTER TABLE "public"."ai_messages_p2026_01" ADD CONSTRAINT "lokifi_archiving"'
        " CHECK (true) NOT VALID"
    ]
    assert not detach.transaction
    assert texts(detach)[0].endswith(
        'DETACH PARTITION "public"."ai_messages_p2026_01" CONCURRENTLY'
    )
    assert attach.transaction
    assert texts(attach)[-2].startswith('ALTER TABLE "archive"."ai_messages" ATTACH PARTITION')
    assert texts(attach)[-1] == (
        'ALTER TABLE "archive"."ai_messages_p2026_01" DROP CONSTRAINT IF EXISTS "lokifi_archiving"'
    )
    # An earlier attempt set the marker already: it is not added twice.
    assert len(steps_for(archive_action(concurrently=True, marked=True))) == 4


def test_every_action_type_has_sql() -> None:
    bound = time_bound(*month(2024, 1))
    actions: list[Action] = [
        create_january(),
        CreateArchiveTable(T, T, QName("archive", "ai_messages"), "created_at", (THREAD,)),
        CreateParentIndex(T, T, THREAD, THREAD.name),
        BuildIndex(T, JAN, THREAD, "i"),
        DropInvalidIndex(T, QName("public", "i")),
        AttachIndex(T, QName("public", "p"), QName("public", "c")),
        FinalizeDetach(T, T, JAN),
        archive_action(False),
        AttachOrphan(T, JAN, QName("archive", "ai_messages"), "created_at", bound, ()),
        DropPartition(T, T, JAN, bound),
        ExportPartition(T, T, JAN, bound, "bucket", "key", "GLACIER"),
    ]
    for action in actions:
        steps = steps_for(action)
        assert steps
        assert all(step.statements for step in steps)
        assert action.describe()


def test_a_plan_renders_to_sql_end_to_end() -> None:
    table = spec(indexes=[THREAD_INDEX, SEARCH_INDEX], archive={"afterDays": 30})
    plan = plan_table(table, observed(parent([])), dt.datetime(2026, 1, 15, tzinfo=dt.UTC))
    rendered = [text(s) for a in plan.actions for step in steps_for(a) for s in step.statements]
    assert rendered[0].startswith('CREATE INDEX "idx_ai_messages_user_thread_time" ON ONLY')
    assert rendered[2].startswith('CREATE SCHEMA IF NOT EXISTS "archive"')
    assert any(r.startswith('CREATE TABLE "public"."ai_messages_p2026_01"') for r in rendered)
    default = rendered.index(next(r for r in rendered if '"ai_messages_default" (LIKE' in r))
    assert default > max(i for i, r in enumerate(rendered) if "ai_messages_p2026_04" in r)
    assert not any(r.startswith("LOCK TABLE") for r in rendered)  # no DEFAULT to guard yet


# --- index definitions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("user_id", IndexKeyDef("user_id")),
        ("created_at DESC", IndexKeyDef("created_at", desc=True)),
        ("created_at asc", IndexKeyDef("created_at")),
        ("created_at DESC NULLS LAST", IndexKeyDef("created_at", desc=True, nulls_first=False)),
        ("score NULLS FIRST", IndexKeyDef("score", nulls_first=True)),
    ],
)
def test_index_keys_are_parsed_once(raw: str, key: IndexKeyDef) -> None:
    parsed = index_def_from_spec(IndexSpec.model_validate({"name": "i", "columns": [raw]}))
    assert parsed.keys == (key,)


def observed_index(
    keys: tuple[IndexKey, ...], predicate: str | None = None, method: str = "btree"
) -> ObservedIndex:
    return ObservedIndex("i", True, method, keys, predicate)


def test_indexes_match_as_postgres_prints_them() -> None:
    printed = observed_index(
        (
            IndexKey("user_id"),
            IndexKey("thread_id"),
            IndexKey("created_at", desc=True, nulls_first=True),
        )
    )
    assert matches(THREAD, printed)
    flipped = observed_index(
        (IndexKey("user_id"), IndexKey("thread_id"), IndexKey("created_at", nulls_first=False))
    )
    assert not matches(THREAD, flipped)
    search = observed_index((IndexKey("to_tsvector('english'::regconfig, content)"),), method="gin")
    assert matches(SEARCH, search)
    german = observed_index((IndexKey("to_tsvector('german'::regconfig, content)"),), method="gin")
    assert not matches(SEARCH, german)
    partial = IndexDef(
        "i", keys=(IndexKeyDef("user_id"),), where_column="is_archived", where_value=False
    )
    assert matches(partial, observed_index((IndexKey("user_id"),), "is_archived = false"))
    assert not matches(partial, observed_index((IndexKey("user_id"),), "is_archived = true"))
    assert not matches(partial, observed_index((IndexKey("user_id"),)))
    text_value = IndexDef("i", keys=(IndexKeyDef("s"),), where_column="s", where_value="open")
    assert matches(text_value, observed_index((IndexKey("s"),), "s = 'open'::text"))


def test_derived_names_fit_postgres_and_stay_unique() -> None:
    assert derived_name("idx_short", "p2026_01") == "idx_short_p2026_01"
    long = "idx_" + "x" * 58
    a, b = derived_name(long, "p2026_01_s10"), derived_name(long, "p2026_01_s11")
    assert len(a) <= 63
    assert len(b) <= 63
    assert a != b
    assert a.endswith("_p2026_01_s10")
    assert derived_name(long, "p2026_01_s10") == a
