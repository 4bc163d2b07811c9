"""deletionPolicy Delete on PostgreSQL: drop the archive tables the operator created, if empty.

An archive table holds partitions moved out of the live table; dropping one that still holds a
partition or a row would drop data. So a table is dropped only when, inside one transaction
holding its ACCESS EXCLUSIVE lock (taken under a short lock_timeout, so a busy table is left for
the next attempt rather than queueing behind readers), it has no partitions attached and no
rows. Anything else is kept and said so. Identifiers are quoted with psycopg.sql.Identifier.
`before_write` (the leader's fence) is asked before the lock and again before the DROP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import psycopg
from psycopg import sql

from lokifi_storage.clients.errors import LockTimeout
from lokifi_storage.clients.postgres.connection import translate
from lokifi_storage.clients.postgres.partitions import open_partition_database

__all__ = ["drop_empty_archive_tables"]

LOCK_TIMEOUT = "5s"


def drop_empty_archive_tables(
    url: str,
    tables: Sequence[tuple[str, str]],
    before_write: Callable[[str], None] | None = None,
) -> list[str]:
    """For each (schema, table): drop it when empty; return one sentence per table found."""
    fence = before_write or (lambda what: None)
    actions: list[str] = []
    with open_partition_database(url) as db:
        conn = db.conn
        for schema, table in tables:
            name = f"{schema}.{table}"
            qualified = sql.Identifier(schema, table)
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT))
                    )
                    row = conn.execute(
                        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = %s AND c.relname = %s",
                        (schema, table),
                    ).fetchone()
                    if row is None:
                        continue
                    fence(f"locking archive table {name} to drop it if empty")
                    conn.execute(
                        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(qualified)
                    )
                    partitions = conn.execute(
                        "SELECT count(*) FROM pg_inherits WHERE inhparent = %s", (row[0],)
                    ).fetchone()
                    has_rows = conn.execute(
                        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(qualified)
                    ).fetchone()
                    count = int(partitions[0]) if partitions else 0
                    if count or (has_rows and has_rows[0]):
                        actions.append(
                            f"kept archive table {name}: it holds {count} partition(s) or rows"
                        )
                        continue
                    fence(f"dropping empty archive table {name}")
                    conn.execute(sql.SQL("DROP TABLE {}").format(qualified))
                    actions.append(f"dropped empty archive table {name}")
            except psycopg.errors.LockNotAvailable:
                raise LockTimeout(f"archive table {name} is in use; its drop is retried") from None
            except psycopg.Error as error:
                raise translate(error, db.where, f"dropping archive table {name}") from None
    return actions
