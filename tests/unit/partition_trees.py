"""Hand-built catalog observations for the partition planner's unit tests.

Each helper builds what domain/partitions/observe.py would build from a real catalog, so a
test can state a situation ("January exists, its index is INVALID") in one line.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.bounds import bound_literal
from lokifi_storage.domain.partitions.catalog import (
    Bound,
    Column,
    IndexKey,
    ObservedIndex,
    ObservedRelation,
    ObservedTable,
    QName,
)
from lokifi_storage.domain.partitions.index_defs import IndexDef, derived_name, index_def_from_spec

UTC = dt.UTC

COLUMNS = (
    Column("id", "bigint"),
    Column("user_id", "bigint"),
    Column("thread_id", "bigint"),
    Column("created_at", "timestamp with time zone"),
    Column("content", "text", toastable=True),
    Column("metadata", "jsonb", toastable=True),
    Column("search", "tsvector", generated=True),
)


def spec(**fields: Any) -> TableSpec:
    base: dict[str, Any] = {
        "name": "ai_messages",
        "partitionBy": {"column": "created_at", "interval": "month"},
        "premake": 3,
    }
    base.update(fields)
    return TableSpec.model_validate(base)


def month(year: int, mon: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(year, mon, 1, tzinfo=UTC)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def time_bound(start: dt.datetime, end: dt.datetime) -> Bound:
    return Bound(bound_literal(start, "timestamptz"), bound_literal(end, "timestamptz"))


def observed_index(
    index: IndexDef, name: str, parent: QName | None = None, *, valid: bool = True
) -> ObservedIndex:
    """The index as PostgreSQL would print it back."""
    if index.fulltext_column is not None:
        keys: tuple[IndexKey, ...] = (
            IndexKey(
                f"to_tsvector('{index.fulltext_language}'::regconfig, {index.fulltext_column})"
            ),
        )
    else:
        keys = tuple(IndexKey(k.column, k.desc, k.effective_nulls_first) for k in index.keys)
    predicate = None
    if index.where_column is not None:
        value = str(index.where_value).lower()
        predicate = f"{index.where_column} = {value}"
    return ObservedIndex(
        name=name,
        valid=valid,
        method=index.method,
        keys=keys,
        predicate=predicate,
        parent=parent,
    )


def defs(table: TableSpec) -> list[IndexDef]:
    return [index_def_from_spec(i) for i in table.indexes]


def leaf(
    name: str,
    bound: Bound,
    *,
    schema: str = "public",
    indexes: tuple[ObservedIndex, ...] = (),
    checks: tuple[str, ...] = (),
    lz4: bool = False,
    detach_pending: bool = False,
) -> ObservedRelation:
    return ObservedRelation(
        qname=QName(schema, name),
        kind="r",
        bound=bound,
        detach_pending=detach_pending,
        indexes=indexes,
        checks=checks,
        columns=tuple(
            Column(c.name, c.type, toastable=True, lz4=lz4) for c in COLUMNS if c.toastable
        ),
        size_bytes=8192,
    )


def month_partition(
    year: int,
    mon: int,
    *,
    table: TableSpec | None = None,
    schema: str = "public",
    parent_schema: str | None = None,
    **options: Any,
) -> ObservedRelation:
    """A month partition carrying every spec index, attached to the parent's."""
    name = f"ai_messages_p{year:04d}_{mon:02d}"
    indexes = tuple(
        observed_index(
            d,
            derived_name(d.name, f"p{year:04d}_{mon:02d}"),
            QName(parent_schema or schema, d.name),
        )
        for d in (defs(table) if table else [])
    )
    return leaf(name, time_bound(*month(year, mon)), schema=schema, indexes=indexes, **options)


def default_partition(table: TableSpec | None = None, schema: str = "public") -> ObservedRelation:
    indexes = tuple(
        observed_index(d, derived_name(d.name, "default"), QName(schema, d.name))
        for d in (defs(table) if table else [])
    )
    return leaf("ai_messages_default", Bound(is_default=True), schema=schema, indexes=indexes)


def parent(
    children: list[ObservedRelation],
    *,
    table: TableSpec | None = None,
    schema: str = "public",
    name: str = "ai_messages",
    valid_indexes: bool = True,
) -> ObservedRelation:
    indexes = tuple(
        ObservedIndex(
            name=d.name,
            valid=valid_indexes,
            method=d.method,
            keys=observed_index(d, d.name).keys,
            predicate=observed_index(d, d.name).predicate,
            partitioned=True,
        )
        for d in (defs(table) if table else [])
    )
    return ObservedRelation(
        qname=QName(schema, name),
        kind="p",
        key_strategy="r",
        key_columns=("created_at",),
        key_types=("timestamp with time zone",),
        indexes=indexes,
        columns=COLUMNS,
        children=tuple(children),
    )


def observed(
    relation: ObservedRelation | None,
    *,
    archive: ObservedRelation | None = None,
    orphans: tuple[ObservedRelation, ...] = (),
    default_buckets: tuple[tuple[dt.datetime, int], ...] = (),
) -> ObservedTable:
    return ObservedTable(
        qname=QName("public", "ai_messages"),
        relation=relation,
        archive=archive,
        orphans=orphans,
        default_buckets=default_buckets,
    )


def steady_state(table: TableSpec, months: list[tuple[int, int]]) -> ObservedTable:
    """Parent, DEFAULT and the given months, every index in place and attached."""
    return observed(
        parent(
            [default_partition(table), *(month_partition(y, m, table=table) for y, m in months)],
            table=table,
        )
    )
