"""VACUUM and ANALYZE on the primary, one relation per statement, under a lock timeout.

VACUUM cannot run inside a transaction block, so the connection is in autocommit. Its lock
(SHARE UPDATE EXCLUSIVE) does not block reads or writes, but waiting for it (behind a long
CREATE INDEX CONCURRENTLY or a DETACH) puts every later DDL in the queue behind us:
`lock_timeout` bounds that wait and the relation is reported as skipped instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from lokifi_storage.clients.errors import LockTimeout, RelationGone
from lokifi_storage.clients.postgres.connection import (
    Connection,
    connect,
    describe_target,
    translate,
    translated,
)
from lokifi_storage.domain.vacuum_plan import Relation, Step, TableName

__all__ = ["VacuumSession"]

# Resolve a name the way PostgreSQL would: an explicit schema, else the first schema of the
# search_path that has it. Only tables (ordinary or partitioned) qualify.
_RESOLVE = """
SELECT c.oid, n.nspname, c.relname, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = %(table)s AND c.relkind IN ('r', 'p')
  AND (n.nspname = %(schema)s
       OR (%(schema)s IS NULL AND n.nspname = ANY (current_schemas(false))))
ORDER BY array_position(current_schemas(false), n.nspname::text) NULLS LAST
LIMIT 1
"""

# Every leaf below a partitioned table, through any depth of sub-partitioning.
_LEAVES = """
WITH RECURSIVE tree(relid) AS (
    SELECT inhrelid FROM pg_inherits WHERE inhparent = %(oid)s
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid
)
SELECT n.nspname, c.relname
FROM tree t JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
ORDER BY 1, 2
"""


# Every table an empty `tables` list means: top-level tables (partitions come through their
# parent) outside the system schemas and not owned by an extension.
_ALL_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
ORDER BY 1, 2
"""


class VacuumSession:
    """One autocommit connection with lock_timeout set."""

    def __init__(self, conn: Connection, target: str) -> None:
        self._conn = conn
        self.target = target

    @classmethod
    @contextmanager
    def open(cls, url: str, *, lock_timeout_seconds: float) -> Iterator[VacuumSession]:
        target = str(describe_target(url))
        with connect(url) as conn:
            millis = max(int(lock_timeout_seconds * 1000), 1)
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(millis)))
            conn.execute("SET statement_timeout = 0")
            yield cls(conn, target)

    def all_tables(self) -> list[TableName]:
        """Every user table of the database, schema-qualified."""
        with translated(self.target, "catalog query"):
            rows = self._conn.execute(_ALL_TABLES).fetchall()
        return [TableName(str(schema), str(table)) for schema, table in rows]

    def resolve(self, names: Sequence[TableName]) -> dict[TableName, Relation | None]:
        found: dict[TableName, Relation | None] = {}
        with translated(self.target, "catalog query"):
            for name in names:
                row = self._conn.execute(
                    _RESOLVE, {"schema": name.schema, "table": name.table}
                ).fetchone()
                if row is None:
                    found[name] = None
                    continue
                oid, schema, table, kind = row
                leaves: tuple[tuple[str, str], ...] = ()
                if kind == "p":
                    rows = self._conn.execute(_LEAVES, {"oid": oid}).fetchall()
                    leaves = tuple((str(s), str(t)) for s, t in rows)
                found[name] = Relation(str(schema), str(table), kind == "p", leaves)
        return found

    def run(self, step: Step) -> float:
        """Run one step; its duration in seconds. LockTimeout when the lock waited out."""
        target = sql.SQL("{}.{}").format(sql.Identifier(step.schema), sql.Identifier(step.name))
        if step.command == "analyze":
            statement = sql.SQL("ANALYZE {}").format(target)
        elif step.analyze:
            statement = sql.SQL("VACUUM (ANALYZE) {}").format(target)
        else:
            statement = sql.SQL("VACUUM {}").format(target)
        started = time.monotonic()
        try:
            self._conn.execute(statement)
        except pg_errors.LockNotAvailable as error:
            raise LockTimeout(f"{step.describe()}: lock not granted within lock_timeout") from error
        except pg_errors.UndefinedTable as error:
            raise RelationGone(f"{step.describe()}: the relation is gone") from error
        except psycopg.Error as error:
            raise translate(error, self.target, step.describe()) from error
        return time.monotonic() - started
