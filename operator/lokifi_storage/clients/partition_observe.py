"""Observe managed tables: one catalog query for every table of the database, then (only when
a DEFAULT partition has any pages at all) an exact count of its rows per interval.

The catalog query walks pg_inherits from each managed table and each archive table down to the
leaves, and also finds tables named like our partitions that are not attached anywhere (left by
an interrupted archive run). For every relation it returns its bound as PostgreSQL prints it,
its partition key, its CHECK constraint names, (for the managed table itself) the key columns
of its primary key, unique constraints and unique indexes, the compression of its large
columns, and its indexes with the parent index each is attached to (the key columns only of
indexes attached to no parent: an attached index matches its parent by construction). Sizes
cost a stat() per file, so only DEFAULT partitions' heap size is read: zero pages means empty,
without a count.

Bounds are printed by `pg_get_expr`, which formats timestamps in the session TimeZone; the
client pins TimeZone to UTC so the text is stable and parses to the same instants everywhere.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.pack_layout import packed_parent
from lokifi_storage.domain.partition_bounds import to_utc
from lokifi_storage.domain.partition_catalog import (
    Column,
    IndexKey,
    ObservedIndex,
    ObservedRelation,
    ObservedTable,
    QName,
    UniqueKey,
    key_type_of,
    parse_partition_bound,
)

__all__ = ["CATALOG_QUERY", "TOASTABLE_TYPES", "assemble", "default_buckets_query", "roots_for"]

TOASTABLE_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea")

# Our partition names after the `<table>_` prefix: p2026, p2026q1, p2026w03, p2026_01, p2026_01_15.
_SUFFIX_REGEX = "^p[0-9]{4}([qw][0-9]{1,2}|_[0-9]{2}(_[0-9]{2})?)?$"

CATALOG_QUERY = sql.SQL(
    """
WITH RECURSIVE
roots AS (
    SELECT c.oid
    FROM unnest(%(schemas)s::text[], %(names)s::text[]) AS r(schema_name, rel_name)
    JOIN pg_namespace n ON n.nspname = r.schema_name
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.rel_name
    WHERE c.relkind IN ('r', 'p')
),
orphans AS (
    SELECT c.oid
    FROM unnest(%(orphan_schemas)s::text[], %(orphan_prefixes)s::text[]) AS o(schema_name, prefix)
    JOIN pg_namespace n ON n.nspname = o.schema_name
    JOIN pg_class c ON c.relnamespace = n.oid
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND left(c.relname, length(o.prefix)) = o.prefix
      AND substr(c.relname, length(o.prefix) + 1) ~ %(suffix_regex)s
),
tree AS (
    SELECT oid, oid AS root, NULL::oid AS parent, false AS detach_pending, 0 AS depth
    FROM (SELECT oid FROM roots UNION SELECT oid FROM orphans) AS start
    UNION ALL
    SELECT i.inhrelid, t.root, i.inhparent, i.inhdetachpending, t.depth + 1
    FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
)
-- Per relation, index lookups by its oid: cheap for a table of ten partitions in a database of
-- a thousand such tables. JSON goes out as text (parsed once per distinct leaf, see _leaf).
SELECT
    t.root, t.oid, t.parent, t.depth, t.detach_pending,
    n.nspname, c.relname, c.relkind,
    b.bound,
    pt.partstrat,
    (SELECT array_agg(a.attname ORDER BY k.ord)
       FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) AS key_columns,
    (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
       FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) AS key_types,
    (SELECT coalesce(array_agg(con.conname::text ORDER BY con.conname), '{}')
       FROM pg_constraint con
      WHERE con.conrelid = c.oid AND con.contype = 'c' AND con.convalidated) AS checks,
    (SELECT coalesce(array_agg(con.conname::text ORDER BY con.conname), '{}')
       FROM pg_constraint con
      WHERE con.conrelid = c.oid AND con.contype = 'c' AND NOT con.convalidated)
      AS unvalidated_checks,
    (SELECT coalesce(json_agg(json_build_object(
                'name', a.attname,
                'type', format_type(a.atttypid, NULL),
                'generated', a.attgenerated <> '',
                'lz4', a.attcompression = 'l') ORDER BY a.attnum), '[]')
       FROM pg_attribute a
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        AND (t.depth = 0 OR a.atttypid = ANY(%(toastable)s::regtype[]))
    )::text AS columns,
    obj_description(c.oid, 'pg_class') AS comment,
    CASE WHEN c.relkind = 'r' AND b.bound = 'DEFAULT'
         THEN pg_relation_size(c.oid) ELSE 0 END AS heap_bytes,
    CASE WHEN t.depth = 0 THEN
    (SELECT coalesce(json_agg(json_build_object(
                'name', coalesce(con.conname, ic.relname),
                'kind', coalesce(con.contype::text, 'i'),
                'columns', (SELECT coalesce(json_agg(a.attname ORDER BY k), '[]')
                              FROM generate_series(0, x.indnkeyatts - 1) AS k
                              JOIN pg_attribute a
                                ON a.attrelid = c.oid AND a.attnum = x.indkey[k])
            ) ORDER BY ic.relname), '[]')
       FROM pg_index x
       JOIN pg_class ic ON ic.oid = x.indexrelid
       LEFT JOIN pg_constraint con
         ON con.conindid = x.indexrelid AND con.conrelid = c.oid AND con.contype IN ('p', 'u')
      WHERE x.indrelid = c.oid AND x.indisunique)::text
    ELSE '[]' END AS unique_keys,
    (SELECT coalesce(json_agg(json_build_object(
                'name', ic.relname,
                'valid', x.indisvalid,
                'method', am.amname,
                'partitioned', ic.relkind = 'I',
                'predicate', CASE WHEN ii.inhparent IS NULL
                                  THEN pg_get_expr(x.indpred, x.indrelid, true) END,
                'parent_schema', pn.nspname,
                'parent_name', pic.relname,
                'keys', CASE WHEN ii.inhparent IS NULL THEN
                        (SELECT json_agg(json_build_object(
                                'text', pg_get_indexdef(x.indexrelid, k, true),
                                'desc', (x.indoption[k - 1] & 1) = 1,
                                'nulls_first', (x.indoption[k - 1] & 2) = 2) ORDER BY k)
                           FROM generate_series(1, x.indnkeyatts) AS k) END
            ) ORDER BY ic.relname), '[]')
       FROM pg_index x
       JOIN pg_class ic ON ic.oid = x.indexrelid
       JOIN pg_am am ON am.oid = ic.relam
       LEFT JOIN pg_inherits ii ON ii.inhrelid = x.indexrelid
       LEFT JOIN pg_class pic ON pic.oid = ii.inhparent
       LEFT JOIN pg_namespace pn ON pn.oid = pic.relnamespace
      WHERE x.indrelid = c.oid)::text AS indexes
FROM tree t
JOIN pg_class c ON c.oid = t.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
    SELECT CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound
    OFFSET 0  -- deparse each bound once (a pulled-up sub-select would deparse it twice)
) AS b
LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
ORDER BY t.root, t.depth, c.relname
"""
)


@dataclass(frozen=True)
class Roots:
    """What to ask the catalog for: the managed tables, archive tables and orphan prefixes."""

    tables: dict[str, QName]  # spec name -> table
    archives: dict[str, QName]  # spec name -> archive table
    orphan_places: list[tuple[str, str]]  # (schema, "<table>_")
    packed: dict[str, QName] = field(default_factory=dict)  # spec name -> packed months' table

    def params(self) -> dict[str, Any]:
        names = [*self.tables.values(), *self.archives.values(), *self.packed.values()]
        return {
            "schemas": [q.schema for q in names],
            "names": [q.name for q in names],
            "orphan_schemas": [s for s, _ in self.orphan_places],
            "orphan_prefixes": [p for _, p in self.orphan_places],
            "suffix_regex": _SUFFIX_REGEX,
            "toastable": list(TOASTABLE_TYPES),
        }


def roots_for(specs: Sequence[TableSpec]) -> Roots:
    tables: dict[str, QName] = {}
    archives: dict[str, QName] = {}
    packed: dict[str, QName] = {}
    places: list[tuple[str, str]] = []
    for spec in specs:
        table = QName.parse(spec.name)
        tables[spec.name] = table
        if spec.partitionBy is None:
            continue
        places.append((table.schema, f"{table.name}_"))
        if spec.archive is not None:
            archives[spec.name] = QName(spec.archive.schema_, table.name)
            packed[spec.name] = packed_parent(archives[spec.name])
            places.append((spec.archive.schema_, f"{table.name}_"))
    return Roots(tables, archives, sorted(set(places)), packed)


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


def build_trees(rows: Sequence[dict[str, Any]]) -> dict[int, tuple[ObservedRelation, int]]:
    """Root oid -> (tree, heap bytes of the root's DEFAULT partition)."""
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

    out: dict[int, tuple[ObservedRelation, int]] = {}
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
        out[oid] = (tree, default_heap)
    return out


def assemble(
    specs: Sequence[TableSpec],
    roots: Roots,
    trees: dict[int, tuple[ObservedRelation, int]],
    buckets: dict[str, tuple[tuple[tuple[dt.datetime, int], ...], int]],
) -> dict[str, ObservedTable]:
    """One ObservedTable per spec, from the trees of the catalog query and the DEFAULT counts."""
    by_name = {tree.qname: tree for tree, _ in trees.values()}
    out: dict[str, ObservedTable] = {}
    for spec in specs:
        table = roots.tables[spec.name]
        archive_q = roots.archives.get(spec.name)
        packed_q = roots.packed.get(spec.name)
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
        counted, outside = buckets.get(spec.name, ((), 0))
        out[spec.name] = ObservedTable(
            qname=table,
            relation=by_name.get(table),
            archive=by_name.get(archive_q) if archive_q else None,
            packed=by_name.get(packed_q) if packed_q else None,
            orphans=orphans,
            default_buckets=counted,
            default_rows_outside_buckets=outside,
        )
    return out


def default_buckets_query(
    default: QName, column: str, interval: str, key_type: str
) -> sql.Composed:
    """Rows of a DEFAULT partition per interval start (NULL start: rows with a NULL key)."""
    if key_type == "timestamptz":
        trunc = sql.SQL("date_trunc({}, {}, 'UTC')").format(
            sql.Literal(interval), sql.Identifier(column)
        )
    else:
        trunc = sql.SQL("date_trunc({}, {}::timestamp)").format(
            sql.Literal(interval), sql.Identifier(column)
        )
    return sql.SQL("SELECT {} AS bucket, count(*) FROM {} GROUP BY 1 ORDER BY 1").format(
        trunc, sql.Identifier(default.schema, default.name)
    )


def bucket_rows(rows: Sequence[tuple[Any, Any]]) -> tuple[tuple[tuple[dt.datetime, int], ...], int]:
    counted: list[tuple[dt.datetime, int]] = []
    outside = 0
    for bucket, count in rows:
        if isinstance(bucket, dt.datetime):
            counted.append((to_utc(bucket), int(count)))
        else:
            outside += int(count)
    return tuple(counted), outside


def key_type_for(tree: ObservedRelation) -> str | None:
    return key_type_of(tree.key_types[0]) if tree.key_types else None
