"""How big the database is, and which tables and partitions make it so. Read-only.

The largest relations are leaves (tables and partitions, heap + indexes + TOAST) plus each
top-level partitioned table with the sum of its whole partition tree: admins ask both "which
table is growing" and "which partition is the fat one".
"""

from __future__ import annotations

from dataclasses import dataclass

from lokifi_storage.clients.postgres.connection import connect, describe_target, translated

__all__ = ["SizeObservation", "measure_sizes"]

_LARGEST = """
WITH rels AS (
    SELECT n.nspname || '.' || c.relname AS name,
           CASE WHEN c.relkind = 'p'
                THEN (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)
                      FROM pg_partition_tree(c.oid) t)
                ELSE pg_total_relation_size(c.oid) END AS bytes
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE (c.relkind IN ('r', 'm') OR (c.relkind = 'p' AND NOT c.relispartition))
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
)
SELECT name, bytes FROM rels ORDER BY bytes DESC, name LIMIT %(top)s
"""


@dataclass(frozen=True)
class SizeObservation:
    database_bytes: int
    largest: list[tuple[str, int]]


def measure_sizes(url: str, *, top: int = 5) -> SizeObservation:
    """pg_database_size of the URL's database and its `top` largest relations."""
    target = str(describe_target(url))
    with connect(url) as conn, translated(target, "size query"):
        conn.execute("SET statement_timeout = 30000")
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        largest = conn.execute(_LARGEST, {"top": top}).fetchall()
    assert row is not None
    return SizeObservation(int(row[0]), [(str(n), int(b)) for n, b in largest])
