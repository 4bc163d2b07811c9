"""The SQL of packing and unpacking a month: one transaction each, verified before the swap,
every identifier quoted, no type spelled out. No server (the integration tests run it)."""

from __future__ import annotations

from partition_trees import COLUMNS, month, spec, time_bound
from psycopg import sql

from example_indexes import THREAD_INDEX
from lokifi_storage.api.spec import IndexSpec
from lokifi_storage.domain.partitions.catalog import Column, QName
from lokifi_storage.domain.partitions.index_defs import index_def_from_spec
from lokifi_storage.domain.partitions.pack import PackPartition, UnpackPartition, month_relation
from lokifi_storage.domain.partitions.pack_layout import (
    PackLayout,
    layout_problem,
    segment_comment,
    stored_segment,
)
from lokifi_storage.domain.partitions.pack_steps import (
    digest_query,
    ensure_steps,
    pack_steps,
    unpack_steps,
    unpacked_copy_query,
    unpacked_select,
)
from lokifi_storage.domain.partitions.statements import Check, Step

T = QName("public", "ai_messages")
ARCHIVE = QName("archive", "ai_messages")
OCTOBER = QName("archive", "ai_messages_p2024_10")
LAYOUT = PackLayout(ARCHIVE, COLUMNS, ("user_id", "thread_id"), "created_at", "lz4", 512)
THREAD = index_def_from_spec(IndexSpec.model_validate(THREAD_INDEX))


def texts(step: Step) -> list[str]:
    out = []
    for s in step.statements:
        if isinstance(s, Check):
            out.append("CHECK: " + s.query.as_string())
        else:
            assert isinstance(s, sql.Composable)
            out.append(s.as_string())
    return out


def test_the_original_rows_come_back_in_the_original_column_order() -> None:
    text = unpacked_select(LAYOUT, OCTOBER).as_string()
    assert text == (
        'SELECT "u"."id", "u"."user_id", "u"."thread_id", "u"."created_at", "u"."content",'
        ' "u"."metadata", "u"."search" FROM "archive"."ai_messages_p2024_10" AS p'
        ' CROSS JOIN LATERAL unnest("p"."id", "p"."user_id", "p"."thread_id", "p"."created_at",'
        ' "p"."content", "p"."metadata", "p"."search") AS u("id", "user_id", "thread_id",'
        ' "created_at", "content", "metadata", "search")'
    )
    copy = unpacked_copy_query(LAYOUT, OCTOBER).as_string()
    assert copy.startswith("COPY (SELECT")
    assert copy.endswith("TO STDOUT (FORMAT csv, HEADER)")


def test_pack_builds_verifies_then_swaps_in_one_transaction() -> None:
    action = PackPartition(T, month=OCTOBER, bound=time_bound(*month(2024, 10)), layout=LAYOUT)
    (step,) = pack_steps(action)
    assert step.transaction
    lines = texts(step)
    assert lines[0] == 'LOCK TABLE "archive"."ai_messages_p2024_10" IN SHARE MODE'
    assert lines[1] == (
        'CREATE TABLE "archive"."ai_messages_p2024_10_packing"'
        ' (LIKE "archive"."ai_messages_packed")'
    )
    assert 'ALTER COLUMN "content" SET COMPRESSION lz4' in lines[2]
    assert 'ALTER COLUMN "lokifi_keys" SET COMPRESSION lz4' in lines[2]
    insert = lines[3]
    assert 'array_agg("content" ORDER BY lokifi_n)' in insert
    assert 'array_agg(DISTINCT row("user_id", "thread_id")::text)' in insert
    assert 'row_number() OVER (ORDER BY "user_id", "thread_id", "created_at")' in insert
    assert 'min(lokifi_n) OVER (PARTITION BY "user_id", "thread_id")' in insert
    # Stored rows are cut at group boundaries every packRows rows, and inside huge groups.
    assert insert.endswith("GROUP BY (lokifi_start - 1) / 512, (lokifi_g - 1) / 1000")
    # The check runs before anything is dropped; the drop, rename and attach come last.
    assert lines[4].startswith("CHECK: SELECT (SELECT row(count(*)")
    assert "USING gin (lokifi_keys)" in lines[6]
    assert [line.split(" ")[:2] for line in lines[7:]] == [
        ["ALTER", "TABLE"],  # DETACH from the archive table
        ["DROP", "TABLE"],
        ["ALTER", "TABLE"],  # RENAME
        ["ALTER", "TABLE"],  # ATTACH to the packed table
    ]
    assert "DETACH PARTITION" in lines[7]
    assert lines[-1] == (
        'ALTER TABLE "archive"."ai_messages_packed" ATTACH PARTITION'
        ' "archive"."ai_messages_p2024_10" FOR VALUES FROM'
        " ('2024-10-01 00:00:00+00') TO ('2024-11-01 00:00:00+00')"
    )


def test_the_digest_covers_every_column_of_every_row_on_both_forms() -> None:
    text = digest_query(LAYOUT, OCTOBER, QName("archive", "x")).as_string()
    plain, packed = text.split(" IS NOT DISTINCT FROM ")
    for side in (plain, packed):
        assert 'row("r"."id", "r"."user_id", "r"."thread_id", "r"."created_at"' in side
        assert "hashtextextended(t, 0)" in side
        assert "hashtextextended(t, 1)" in side
    assert "unnest(" in packed
    assert "unnest(" not in plain


def test_unpack_restores_the_spec_sub_partitions_and_indexes_before_the_swap() -> None:
    table = spec(subpartitionBy={"column": "user_id", "rangeSize": 100, "count": 2})
    action = UnpackPartition(
        T,
        packed=OCTOBER,
        month=month_relation(table, OCTOBER, time_bound(*month(2024, 10))),
        layout=LAYOUT,
        indexes=(THREAD,),
    )
    (step,) = unpack_steps(action)
    lines = texts(step)
    assert lines[0] == (
        'ALTER TABLE "archive"."ai_messages_p2024_10" RENAME TO "ai_messages_p2024_10_unpacking"'
    )
    assert 'PARTITION BY RANGE ("user_id")' in lines[1]
    assert any('"ai_messages_p2024_10_s1" PARTITION OF' in line for line in lines)
    assert any('"ai_messages_p2024_10_sdefault" PARTITION OF' in line for line in lines)
    insert = next(i for i, line in enumerate(lines) if line.startswith("INSERT"))
    # Generated columns are computed again, not inserted.
    assert '"search"' not in lines[insert].split(" SELECT ")[0]
    assert lines[insert + 1].startswith("CHECK:")
    assert lines[-3].startswith('ALTER TABLE "archive"."ai_messages_packed" DETACH PARTITION')
    assert lines[-2] == 'DROP TABLE "archive"."ai_messages_p2024_10_unpacking"'
    assert lines[-1].startswith(
        'ALTER TABLE "archive"."ai_messages" ATTACH PARTITION "archive"."ai_messages_p2024_10"'
    )


def test_the_packed_table_is_typed_from_the_archive_table_and_read_through_a_view() -> None:
    (step,) = ensure_steps(LAYOUT)
    lines = texts(step)
    assert lines[0] == (
        'CREATE TABLE "archive"."ai_messages_packed_template" AS SELECT'
        ' ARRAY[row("user_id", "thread_id")::text] AS lokifi_keys, 0::integer AS lokifi_rows,'
        ' "created_at" AS lokifi_first, "created_at" AS lokifi_last, ARRAY["id"] AS "id",'
        ' ARRAY["user_id"] AS "user_id", ARRAY["thread_id"] AS "thread_id",'
        ' ARRAY["created_at"] AS "created_at", ARRAY["content"] AS "content",'
        ' ARRAY["metadata"] AS "metadata", ARRAY["search"] AS "search"'
        ' FROM "archive"."ai_messages" WITH NO DATA'
    )
    assert lines[1].endswith("PARTITION BY RANGE (lokifi_first)")
    assert lines[3] == (
        'COMMENT ON TABLE "archive"."ai_messages_packed" IS'
        " 'lokifi packed; segmentBy=user_id,thread_id'"
    )
    view = next(line for line in lines if "VIEW" in line)
    assert view.startswith('CREATE OR REPLACE VIEW "archive"."ai_messages_rows" AS SELECT')
    assert " UNION ALL SELECT " in view
    function = lines[-1]
    assert function.startswith(
        'CREATE OR REPLACE FUNCTION "archive"."ai_messages_group"("user_id"'
        ' "archive"."ai_messages"."user_id"%TYPE, "thread_id"'
        ' "archive"."ai_messages"."thread_id"%TYPE) RETURNS SETOF "archive"."ai_messages"'
    )
    assert 'AS a WHERE "a"."user_id" = $1 AND "a"."thread_id" = $2 UNION ALL' in function
    assert (
        'WHERE p.lokifi_keys @> ARRAY[row($1, $2)::text] AND "u"."user_id" = $1'
        ' AND "u"."thread_id" = $2) AS r ORDER BY r."created_at"; END'
    ) in function


def test_layouts_that_cannot_be_packed_are_named() -> None:
    assert layout_problem(COLUMNS, ("user_id", "thread_id")) is None
    assert "tenant" in (layout_problem(COLUMNS, ("tenant",)) or "")
    tagged = (*COLUMNS, Column("tags", "text[]"))
    assert "tags is an array" in (layout_problem(tagged, ("user_id",)) or "")
    clash = (*COLUMNS, Column("lokifi_rows", "integer"))
    assert "lokifi_rows clashes" in (layout_problem(clash, ("user_id",)) or "")
    assert stored_segment(segment_comment(("user_id", "thread_id"))) == ("user_id", "thread_id")
    assert stored_segment("made by hand") == ()
    assert stored_segment(None) == ()
