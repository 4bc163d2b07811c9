"""The SQL side of backups: a consistent snapshot for pg_dump, row counts, scratch databases.

Row counts for the manifest are taken inside the very snapshot pg_dump dumps (exported with
pg_export_snapshot and handed to `pg_dump --snapshot`), so they are the exact number of rows the
dump holds, whatever writes happen meanwhile. Verify compares them with the rows a restore
produced: an end-to-end proof from the database to the restored copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg
from psycopg import sql

from lokifi_storage.clients.postgres.connection import (
    Connection,
    connect,
    describe_target,
    translate,
    translated,
)
from lokifi_storage.domain.backup_manifest import TableRows

__all__ = [
    "SnapshotSession",
    "count_rows",
    "create_database",
    "database_exists",
    "drop_database",
    "managed_partitions",
    "scratch_databases",
    "server_identity",
    "user_table_count",
]

# Ordinary tables whose rows pg_dump writes: no catalogs, no temp tables of other sessions, no
# tables that belong to an extension (pg_dump leaves those to CREATE EXTENSION).
_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


def _count(conn: Connection) -> list[TableRows]:
    tables = conn.execute(_TABLES).fetchall()
    counts = []
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
        counts.append(TableRows(schema, table, int(row[0]) if row else 0))
    return counts


class SnapshotSession:
    """A read-only REPEATABLE READ transaction whose snapshot pg_dump imports.

    Keep it open until pg_dump has finished: the exported snapshot lives only as long as the
    exporting transaction.
    """

    def __init__(self, conn: Connection, target: str) -> None:
        self._conn = conn
        self.target = target
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute(
            "SELECT pg_export_snapshot(), current_setting('server_version'), current_database()"
        ).fetchone()
        assert row is not None
        self.snapshot, self.server_version, self.database = str(row[0]), str(row[1]), str(row[2])

    @classmethod
    @contextmanager
    def open(cls, url: str) -> Iterator[SnapshotSession]:
        target = str(describe_target(url))
        with connect(url) as conn:
            try:
                session = cls(conn, target)
                yield session
            except psycopg.Error as error:
                raise translate(error, target, "snapshot query") from error
            finally:
                if not conn.closed and not conn.broken:
                    conn.execute("ROLLBACK")

    def cancel(self) -> None:
        """Cancel a count in progress (the backup failed; no need to finish counting)."""
        with suppress(psycopg.Error):
            self._conn.cancel_safe(timeout=5)

    def count_rows(self) -> list[TableRows]:
        """Rows per table as of the exported snapshot: exactly what the dump contains."""
        with translated(self.target, "counting rows"):
            return _count(self._conn)


def count_rows(url: str) -> list[TableRows]:
    """Rows per table in the database at `url` (used on a restored copy)."""
    target = str(describe_target(url))
    with connect(url) as conn, translated(target, "counting rows"):
        return _count(conn)


def server_identity(url: str) -> tuple[str, str]:
    """(system_identifier, current database) of the server at `url`.

    system_identifier is fixed when the cluster is initialised and shared by its streaming
    replicas only: two servers never share it, whatever their databases are called.
    """
    target = str(describe_target(url))
    with connect(url) as conn, translated(target, "reading the server's system_identifier"):
        row = conn.execute(
            "SELECT system_identifier::text, current_database() FROM pg_control_system()"
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def managed_partitions(url: str, constraint: str) -> int:
    """How many tables of the database carry a CHECK constraint named `constraint`."""
    with connect(url) as conn, translated(str(describe_target(url)), "counting partitions"):
        row = conn.execute(
            "SELECT count(DISTINCT conrelid) FROM pg_constraint WHERE contype = 'c'"
            " AND conname = %s",
            (constraint,),
        ).fetchone()
    return int(row[0]) if row else 0


def database_exists(url: str, name: str) -> bool:
    with connect(url) as conn, translated(str(describe_target(url)), "listing databases"):
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


def create_database(url: str, name: str) -> None:
    """CREATE DATABASE `name` on the server of `url` (connected to `url`'s own database)."""
    target = str(describe_target(url))
    with connect(url) as conn, translated(target, f"creating database {name!r}"):
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def scratch_databases(url: str, prefix: str) -> list[str]:
    """Databases of the server whose name starts with `prefix`."""
    with connect(url) as conn, translated(str(describe_target(url)), "listing databases"):
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE left(datname, length(%s)) = %s ORDER BY 1",
            (prefix, prefix),
        ).fetchall()
    return [str(row[0]) for row in rows]


def drop_database(url: str, name: str, *, force: bool = True) -> None:
    """DROP DATABASE IF EXISTS `name` [WITH (FORCE)]: scratch databases only. Without force,
    a database someone is connected to is refused (ClientError)."""
    target = str(describe_target(url))
    statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if force else "DROP DATABASE IF EXISTS {}"
    with connect(url) as conn, translated(target, f"dropping database {name!r}"):
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


def user_table_count(url: str) -> int:
    """How many tables (of any kind) live outside the system schemas: 0 means fresh."""
    with connect(url) as conn, translated(str(describe_target(url)), "counting tables"):
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_%'"
        ).fetchone()
        return int(row[0]) if row else 0
