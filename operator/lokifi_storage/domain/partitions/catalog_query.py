"""What to ask the catalog about managed tables: one catalog query for every table of the
database, then (only when a DEFAULT partition has any pages at all) an exact count of its rows
per interval. The client (clients/postgres/partitions.py) sends them; catalog_rows.py reads the
answer.

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.catalog import ObservedRelation, QName, key_type_of
from lokifi_storage.domain.partitions.pack_layout import packed_parent

__all__ = [
    "CATALOG_QUERY",
    "FINGERPRINT_QUERY",
    "TOASTABLE_TYPES",
    "CatalogRequest",
    "bucket_queries",
    "default_buckets_query",
    "request_for",
]

TOASTABLE_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea")

# Our partition names after the `<table>_` prefix: p2026, p2026q1, p2026w03, p2026_01, p2026_01_15.
_SUFFIX_REGEX = "^p[0-9]{4}([qw][0-9]{1,2}|_[0-9]{2}(_[0-9]{2})?)?$"

# The managed tables, their archive and packed tables and the orphans named like our
# partitions, with every relation below them: shared by both queries below.
_TREE = """
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
    -- A range of names, so the name index finds them: a schema may hold thousands of tables.
    CROSS JOIN LATERAL (
        SELECT c.oid, c.relname FROM pg_class c
         WHERE c.relname >= o.prefix::name
           AND c.relname < (left(o.prefix, -1) || chr(ascii(right(o.prefix, 1)) + 1))::name
           AND c.relnamespace = n.oid AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        OFFSET 0) AS c
    WHERE left(c.relname, length(o.prefix)) = o.prefix
      AND substr(c.relname, length(o.prefix) + 1) ~ %(suffix_regex)s
),
tree AS (
    SELECT oid, oid AS root, NULL::oid AS parent, false AS detach_pending, 0 AS depth
    FROM (SELECT oid FROM roots UNION SELECT oid FROM orphans) AS start
    UNION ALL
    SELECT i.inhrelid, t.root, i.inhparent, i.inhdetachpending, t.depth + 1
    FROM tree t
    CROSS JOIN LATERAL (
        SELECT i.inhrelid, i.inhparent, i.inhdetachpending FROM pg_inherits i
         WHERE i.inhparent = t.oid
        OFFSET 0) AS i
)
-- Every large catalog below is read by index lookups per relation (LATERAL ... OFFSET 0 keeps
-- the planner from hashing a whole catalog): a managed table of ten partitions in a database of
-- a thousand such tables costs its own rows, not the database's.
"""

# Each relation of the tree with its pg_class, pg_namespace and pg_partitioned_table rows.
_RELATIONS = """
FROM tree t
CROSS JOIN LATERAL (
    SELECT c.oid, c.xmin, c.relname, c.relkind, c.relnamespace, c.relispartition, c.relpartbound
      FROM pg_class c WHERE c.oid = t.oid
    OFFSET 0) AS c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid  -- one row per partitioned table
"""

CATALOG_QUERY = sql.SQL(
    _TREE
    + """
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
                'predicate', CASE WHEN p.inhparent IS NULL
                                  THEN pg_get_expr(x.indpred, x.indrelid, true) END,
                'parent_schema', p.nspname,
                'parent_name', p.relname,
                'keys', CASE WHEN p.inhparent IS NULL THEN
                        (SELECT json_agg(json_build_object(
                                'text', pg_get_indexdef(x.indexrelid, k, true),
                                'desc', (x.indoption[k - 1] & 1) = 1,
                                'nulls_first', (x.indoption[k - 1] & 2) = 2) ORDER BY k)
                           FROM generate_series(1, x.indnkeyatts) AS k) END
            ) ORDER BY ic.relname), '[]')
       FROM pg_index x
       JOIN pg_class ic ON ic.oid = x.indexrelid
       JOIN pg_am am ON am.oid = ic.relam
       -- The parent index by its own index lookup: joined, pg_inherits is hashed whole for
       -- every relation, which grows with the square of the partitions.
       LEFT JOIN LATERAL (
           SELECT ii.inhparent, pic.relname, pn.nspname
             FROM pg_inherits ii
             JOIN pg_class pic ON pic.oid = ii.inhparent
             JOIN pg_namespace pn ON pn.oid = pic.relnamespace
            WHERE ii.inhrelid = x.indexrelid
           OFFSET 0) AS p ON true
      WHERE x.indrelid = c.oid)::text AS indexes
"""
    + _RELATIONS
    + """CROSS JOIN LATERAL (
    SELECT CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound
    OFFSET 0  -- deparse each bound once (a pulled-up sub-select would deparse it twice)
) AS b
ORDER BY t.root, t.depth, c.relname
"""
)

# What changes whenever anything CATALOG_QUERY reads changes: the row version (xmin) of every
# catalog row it reads, the index flags PostgreSQL updates in place (without a new xmin), and
# the size of each DEFAULT partition. Equal fingerprints mean an equal observation, so a pass
# that finds the catalog unchanged reuses the trees it built before instead of deparsing every
# bound and rebuilding every relation again. (Type names are not covered: renaming a type a
# managed column uses goes unnoticed until anything else about the table changes.)
#
# Set-based and without text: each catalog is read once for the whole tree (`= ANY` of the
# tree's oids, one index scan) and its rows are folded into a 64-bit hash of arrays
# (hash_array_extended, each array's hash the seed of the next) instead of formatting every
# oid and xmin as text: a third of the server time of a per-relation, md5-of-text fingerprint.
# A row that changes gets a new xmin, a row that comes or goes changes an array's length, so
# any change alters an array; arrays follow the scan's order, which changes only with the
# plan or the rows' places, and then the fingerprint changes too (one needless full read).
FINGERPRINT_QUERY = sql.SQL(
    _TREE
    + """,
rels AS MATERIALIZED (SELECT array_agg(t.oid) AS oids FROM tree t),
idx AS MATERIALIZED (
    SELECT array_agg(x.indexrelid) AS oids,
           hash_array_extended(array_agg(x.indrelid), hash_array_extended(array_agg(x.xmin),
           hash_array_extended(array_agg(x.indisvalid),
           hash_array_extended(array_agg(x.indisready), 0)))) AS h
      FROM rels, pg_index x WHERE x.indrelid = ANY(rels.oids)),
-- The indexes those attach to: an index's pg_inherits row comes and goes only with the
-- relispartition of its own pg_class row, so their classes are what is hashed.
idx_parents AS MATERIALIZED (
    SELECT array_agg(i.inhparent) AS oids
      FROM idx, pg_inherits i WHERE i.inhrelid = ANY(idx.oids)),
classes AS MATERIALIZED (  -- the relations, their indexes and the indexes those attach to
    SELECT array_agg(c.relnamespace) AS namespaces,
           hash_array_extended(array_agg(c.oid), hash_array_extended(array_agg(c.xmin), 0)) AS h
      FROM pg_class c
     WHERE c.oid = ANY((SELECT oids FROM rels) || (SELECT oids FROM idx)
                       || (SELECT oids FROM idx_parents)))
SELECT (SELECT count(*) FROM tree) AS count, ARRAY[
    (SELECT hash_array_extended(array_agg(t.oid), hash_array_extended(array_agg(t.parent),
            hash_array_extended(array_agg(t.detach_pending), 0))) FROM tree t),
    (SELECT h FROM classes),
    (SELECT hash_array_extended(array_agg(n.oid), hash_array_extended(array_agg(n.xmin), 0))
       FROM classes, pg_namespace n WHERE n.oid = ANY(classes.namespaces)),
    (SELECT hash_array_extended(array_agg(p.partrelid), hash_array_extended(array_agg(p.xmin),
            hash_array_extended(array_agg(pg_relation_size(nullif(p.partdefid, 0))), 0)))
       FROM rels, pg_partitioned_table p WHERE p.partrelid = ANY(rels.oids)),
    (SELECT hash_array_extended(array_agg(a.attrelid), hash_array_extended(array_agg(a.xmin), 0))
       FROM rels, pg_attribute a WHERE a.attrelid = ANY(rels.oids) AND a.attnum > 0),
    (SELECT hash_array_extended(array_agg(con.oid), hash_array_extended(array_agg(con.xmin), 0))
       FROM rels, pg_constraint con WHERE con.conrelid = ANY(rels.oids)),
    (SELECT hash_array_extended(array_agg(d.objoid), hash_array_extended(array_agg(d.xmin), 0))
       FROM rels, pg_description d
      WHERE d.objoid = ANY(rels.oids) AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0),
    (SELECT h FROM idx)] AS hashes
"""
)


@dataclass(frozen=True)
class CatalogRequest:
    """What to ask the catalog for, by qualified name only: the client runs it without
    knowing a spec. Keys are the spec names the answer is returned under."""

    tables: dict[str, QName]  # spec name -> table
    archives: dict[str, QName]  # spec name -> archive table
    orphan_places: list[tuple[str, str]]  # (schema, "<table>_")
    packed: dict[str, QName] = field(default_factory=dict)  # spec name -> packed months' table
    # spec name -> (partition column, interval): whose DEFAULT rows are counted per interval
    buckets: dict[str, tuple[str, str]] = field(default_factory=dict)

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


def request_for(specs: Sequence[TableSpec]) -> CatalogRequest:
    tables: dict[str, QName] = {}
    archives: dict[str, QName] = {}
    packed: dict[str, QName] = {}
    buckets: dict[str, tuple[str, str]] = {}
    places: list[tuple[str, str]] = []
    for spec in specs:
        table = QName.parse(spec.name)
        tables[spec.name] = table
        if spec.partitionBy is None:
            continue
        buckets[spec.name] = (spec.partitionBy.column, spec.partitionBy.interval)
        places.append((table.schema, f"{table.name}_"))
        if spec.archive is not None:
            archives[spec.name] = QName(spec.archive.schema_, table.name)
            packed[spec.name] = packed_parent(archives[spec.name])
            places.append((spec.archive.schema_, f"{table.name}_"))
    return CatalogRequest(tables, archives, sorted(set(places)), packed, buckets)


def bucket_queries(
    request: CatalogRequest, found: dict[QName, tuple[ObservedRelation, int]]
) -> dict[str, sql.Composed]:
    """The DEFAULT counts worth running, per spec name: only where the DEFAULT has pages
    (`found`: table -> (tree, heap bytes of its DEFAULT)), since zero pages means empty."""
    out: dict[str, sql.Composed] = {}
    for name, (column, interval) in request.buckets.items():
        tree, default_heap = found.get(request.tables[name], (None, 0))
        if tree is None or default_heap == 0:
            continue
        default = tree.default_child()
        key_type = key_type_of(tree.key_types[0]) if tree.key_types else None
        if default is None or key_type is None:
            continue
        out[name] = default_buckets_query(default.qname, column, interval, key_type)
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
