"""What the catalog query's rows mean: trees of ObservedRelation, one ObservedTable per table.

Parsing is the cost of observing a large table (the query itself is cheap), so leaves are
built once per distinct row and shared between observations.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from lokifi_storage.domain.partitions.bounds import to_utc
from lokifi_storage.domain.partitions.catalog import (
    Column,
    IndexKey,
    ObservedIndex,
    ObservedRelation,
    ObservedTable,
    QName,
    UniqueKey,
    parse_partition_bound,
)
from lokifi_storage.domain.partitions.catalog_query import TOASTABLE_TYPES, CatalogRequest

__all__ = ["assemble", "bucket_rows", "build_trees"]

_ROW_FIELDS = (
    "nspname",
    "relname",
    "relkind",
    "bound",
    "detach_pending",
    "partstrat",
    "key_columns",
    "key_types",
    "checks",
    "unvalidated_checks",
    "columns",
    "comment",
    "unique_keys",
    "heap_bytes",
    "indexes",
)
#: leaf relations kept between observations (a few hundred bytes each)
LEAF_CACHE_SIZE = 65_536


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        tuple(value) if isinstance(value, list) else value
        for value in (row[name] for name in _ROW_FIELDS)
    )


@functools.lru_cache(maxsize=LEAF_CACHE_SIZE)
def _leaf(key: tuple[Any, ...]) -> ObservedRelation:
    """A partition without children, built once per distinct catalog row: a table of 7,680
    partitions is observed every resync, and almost all of its rows are the same each time
    (ObservedRelation is immutable, so one object serves every observation)."""
    return _relation(dict(zip(_ROW_FIELDS, key, strict=True)), ())


def _relation(row: dict[str, Any], children: tuple[ObservedRelation, ...]) -> ObservedRelation:
    indexes = tuple(
        ObservedIndex(
            name=i["name"],
            valid=bool(i["valid"]),
            method=i["method"],
            keys=tuple(
                IndexKey(k["text"], bool(k["desc"]), bool(k["nulls_first"]))
                for k in (i["keys"] or [])
            ),
            predicate=i["predicate"],
            parent=QName(i["parent_schema"], i["parent_name"]) if i["parent_name"] else None,
            partitioned=bool(i["partitioned"]),
        )
        for i in _json(row["indexes"])
    )
    columns = tuple(
        Column(
            name=col["name"],
            type=col["type"],
            generated=bool(col["generated"]),
            toastable=col["type"] in TOASTABLE_TYPES,
            lz4=bool(col["lz4"]),
        )
        for col in _json(row["columns"])
    )
    return ObservedRelation(
        qname=QName(row["nspname"], row["relname"]),
        kind=row["relkind"],
        bound=parse_partition_bound(row["bound"]) if row["bound"] is not None else None,
        detach_pending=bool(row["detach_pending"]),
        key_strategy=row["partstrat"],
        key_columns=tuple(row["key_columns"] or ()),
        key_types=tuple(row["key_types"] or ()),
        indexes=indexes,
        checks=tuple(row["checks"] or ()),
        unvalidated_checks=tuple(row["unvalidated_checks"] or ()),
        columns=columns,
        size_bytes=int(row["heap_bytes"] or 0),
        unique_keys=tuple(
            UniqueKey(name=k["name"], kind=k["kind"], columns=tuple(k["columns"]))
            for k in _json(row.get("unique_keys"))
        ),
        children=children,
        comment=row.get("comment"),
    )


def _json(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        loaded: list[dict[str, Any]] = json.loads(value)
        return loaded
    return list(value or [])


def build_trees(rows: Sequence[dict[str, Any]]) -> dict[QName, tuple[ObservedRelation, int]]:
    """Root -> (tree, heap bytes of the root's DEFAULT partition)."""
    by_parent: dict[int, list[dict[str, Any]]] = defaultdict(list)
    roots: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row["depth"] == 0:
            roots[row["oid"]] = row
        else:
            by_parent[row["parent"]].append(row)

    def build(row: dict[str, Any]) -> ObservedRelation:
        below = by_parent.get(row["oid"])
        if not below:
            return _leaf(_row_key(row))
        return _relation(row, tuple(build(child) for child in below))

    out: dict[QName, tuple[ObservedRelation, int]] = {}
    for oid, row in roots.items():
        tree = build(row)
        default_heap = next(
            (
                int(child["heap_bytes"] or 0)
                for child in by_parent.get(oid, [])
                if child["bound"] is not None and child["bound"].strip() == "DEFAULT"
            ),
            0,
        )
        out[tree.qname] = (tree, default_heap)
    return out


def assemble(
    request: CatalogRequest,
    trees: dict[QName, tuple[ObservedRelation, int]],
    buckets: dict[str, tuple[tuple[tuple[dt.datetime, int], ...], int]],
) -> dict[str, ObservedTable]:
    """One ObservedTable per requested table, from the trees of the catalog query and the
    DEFAULT counts."""
    by_name = {q: tree for q, (tree, _) in trees.items()}
    out: dict[str, ObservedTable] = {}
    for name, table in request.tables.items():
        archive_q = request.archives.get(name)
        packed_q = request.packed.get(name)
        prefix = f"{table.name}_"
        schemas = {table.schema} | ({archive_q.schema} if archive_q else set())
        orphans = tuple(
            tree
            for q, tree in sorted(by_name.items())
            if q.schema in schemas
            and q.name.startswith(prefix)
            and tree.bound is None
            and q != table
            and q != archive_q
            and q != packed_q
        )
        counted, outside = buckets.get(name, ((), 0))
        out[name] = ObservedTable(
            qname=table,
            relation=by_name.get(table),
            archive=by_name.get(archive_q) if archive_q else None,
            packed=by_name.get(packed_q) if packed_q else None,
            orphans=orphans,
            default_buckets=counted,
            default_rows_outside_buckets=outside,
        )
    return out


def bucket_rows(rows: Sequence[tuple[Any, Any]]) -> tuple[tuple[tuple[dt.datetime, int], ...], int]:
    counted: list[tuple[dt.datetime, int]] = []
    outside = 0
    for bucket, count in rows:
        if isinstance(bucket, dt.datetime):
            counted.append((to_utc(bucket), int(count)))
        else:
            outside += int(count)
    return tuple(counted), outside
