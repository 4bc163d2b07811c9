"""The PostgreSQL side of `migrate sqlite`: target tables, chunked COPY with checkpoints, digests.

A chunk is one transaction: its COPYs (into the table, or into the table and its archive), its
rejects and its row in `lokifi_migrate.chunks` commit together, so a kill -9 at any point leaves
either the whole chunk or none of it, and a re-run loads exactly the rows no committed chunk
covers: no duplicates, nothing missing, whichever of several writers committed last.

A COPY that PostgreSQL refuses for one row (a value the converters let through but the server
does not take, a constraint of an existing table) would otherwise fail the whole chunk: the
chunk is then split in halves under savepoints until the refused rows are single, and each goes
to the rejects table with the server's one-line message and the column it names.

Messages carry host, port, database and relation names only, never the URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg import sql

from lokifi_storage.clients.migrate_readback import read_back
from lokifi_storage.clients.migrate_sql import (
    STATE_SCHEMA,
    copy_statement,
    ident,
    leaves_query,
    state_tables,
)
from lokifi_storage.clients.postgres.connection import (
    Target,
    connect_autocommit,
    translate,
    translated,
)
from lokifi_storage.clients.postgres.diagnostics import server_message
from lokifi_storage.domain.migrate_chunks import Checkpoint, Chunk, Reject, RouteRows
from lokifi_storage.domain.migrate_schema import TargetColumn, TargetTable
from lokifi_storage.domain.partitions.catalog import QName

__all__ = ["MigrateTarget"]


_COLUMN_IN_CONTEXT = re.compile(r'column (\w+|"[^"]+")')

Conn = psycopg.Connection[Any]


def _column_of(error: psycopg.Error) -> str | None:
    diag = error.diag
    if diag.column_name:
        return str(diag.column_name)
    match = _COLUMN_IN_CONTEXT.search(diag.context or "")
    return match.group(1).strip('"') if match else None


class MigrateTarget:
    """One autocommit connection to the primary for the rows and the checkpoints."""

    def __init__(self, conn: Conn, target: Target) -> None:
        self.conn = conn
        self.target = target

    @classmethod
    def open(cls, url: str, toast_compression: str | None = None) -> MigrateTarget:
        """`toast_compression` (pglz or lz4): how this session compresses the long values it
        writes, when the server has that method; otherwise the server's default."""
        conn, target = connect_autocommit(url, "primary")
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET DateStyle = 'ISO, YMD'")
        conn.execute("SET extra_float_digits = 1")
        # A chunk lost to a server crash is lost with its checkpoint: the re-run redoes it.
        conn.execute("SET synchronous_commit = off")
        self = cls(conn, target)
        if toast_compression is not None and toast_compression in self.toast_compressions():
            # Only how this session's values are compressed: the columns keep the server's
            # default for the app's writes, and either method reads back as the same value.
            conn.execute(
                sql.SQL("SET default_toast_compression = {}").format(sql.Literal(toast_compression))
            )
        return self

    def toast_compressions(self) -> list[str]:
        """The TOAST compression methods the server was built with (lz4 is optional)."""
        rows = self.query(
            "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        return list(rows[0][0]) if rows and rows[0][0] else []

    def close(self) -> None:
        self.conn.close()

    @property
    def where(self) -> str:
        """How messages name this connection (never with its password)."""
        return f"primary {self.target}"

    def _translated(self, doing: str) -> AbstractContextManager[None]:
        """Driver errors of the block as the clients' errors (clients/postgres/connection.py);
        a connection still open after an OperationalError did not lose it."""
        return translated(self.where, doing, conn=self.conn)

    def query(self, statement: sql.Composed | str, params: Any = None) -> list[tuple[Any, ...]]:
        with self._translated("query"):
            cursor = self.conn.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description else []

    def execute(self, statement: sql.Composed | str, what: str) -> None:
        with self._translated(what):
            self.conn.execute(statement)

    # -- target tables ------------------------------------------------------------------------

    def observe(self, qname: QName) -> TargetTable | None:
        rows = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            " a.atthasdef OR a.attidentity <> '', a.attgenerated <> '',"
            " pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
            "   a.attname) IS NOT NULL"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')"
            " ORDER BY a.attnum",
            (qname.schema, qname.name),
        )
        if not rows:
            return None
        key = self.query(
            "SELECT p.partattrs::int2[] FROM pg_partitioned_table p"
            " JOIN pg_class c ON c.oid = p.partrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (qname.schema, qname.name),
        )
        columns = tuple(
            TargetColumn(
                name=name,
                type=pg_type,
                not_null=bool(not_null),
                has_default=bool(has_default),
                generated=bool(generated),
                serial=bool(serial),
            )
            for name, pg_type, not_null, has_default, generated, serial in rows
        )
        partition_column = None
        if key and key[0][0] and len(key[0][0]) == 1 and key[0][0][0] > 0:
            partition_column = columns[key[0][0][0] - 1].name
        return TargetTable(
            qname=qname, columns=columns, partition_column=partition_column, exists=True
        )

    def has_rows(self, relations: Sequence[QName]) -> bool:
        for relation in relations:
            rows = self.query(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(ident(relation)))
            if rows[0][0]:
                return True
        return False

    def relation_exists(self, qname: QName) -> bool:
        rows = self.query(
            "SELECT to_regclass(quote_ident(%s) || '.' || quote_ident(%s)) IS NOT NULL",
            (qname.schema, qname.name),
        )
        return bool(rows[0][0])

    # -- checkpoints --------------------------------------------------------------------------

    def state_exists(self) -> bool:
        return self.relation_exists(QName(STATE_SCHEMA, "checkpoints"))

    def ensure_state(self) -> None:
        with self._translated(f"creating {STATE_SCHEMA}"), self.conn.transaction():
            for statement in state_tables():
                self.conn.execute(statement)

    def checkpoints(self) -> dict[str, Checkpoint]:
        if not self.state_exists():
            return {}
        schema = sql.Identifier(STATE_SCHEMA)
        ranges: dict[str, list[tuple[int, int]]] = {}
        for name, after, last in self.query(
            sql.SQL("SELECT source_table, after_rowid, last_rowid FROM {}.chunks").format(schema)
        ):
            ranges.setdefault(name, []).append((int(after), int(last)))
        rows = self.query(
            sql.SQL(
                "SELECT c.source_table, c.target_table, c.finished, c.created,"
                " coalesce(sum(k.rows_copied), 0), coalesce(sum(k.rows_rejected), 0),"
                " CASE WHEN count(k.*) = count(k.digest) THEN coalesce(sum(k.digest), 0) END"
                " FROM {0}.checkpoints c LEFT JOIN {0}.chunks k USING (source_table)"
                " GROUP BY 1, 2, 3, 4"
            ).format(schema)
        )
        return {
            r[0]: Checkpoint(
                source_table=r[0],
                target_table=r[1],
                finished=bool(r[2]),
                created=bool(r[3]),
                rows_copied=int(r[4]),
                rows_rejected=int(r[5]),
                digest=int(r[6]) if r[6] is not None else None,
                ranges=tuple(sorted(ranges.get(r[0], []))),
            )
            for r in rows
        }

    def start_table(self, source_table: str, target: QName) -> None:
        self.execute(
            sql.SQL(
                "INSERT INTO {}.checkpoints (source_table, target_table)"
                " VALUES ({}, {}) ON CONFLICT (source_table) DO NOTHING"
            ).format(
                sql.Identifier(STATE_SCHEMA), sql.Literal(source_table), sql.Literal(str(target))
            ),
            f"checkpoint of {source_table}",
        )

    def create_table(self, statement: sql.Composed, source_table: str, target: QName) -> None:
        """CREATE TABLE and its checkpoint row (marked `created`) in one transaction, so a
        re-run knows the table is this migration's own even if it was killed right after."""
        with self._translated(f"creating {target}"), self.conn.transaction():
            self.conn.execute(statement)
            self.conn.execute(
                sql.SQL(
                    "INSERT INTO {}.checkpoints (source_table, target_table, created)"
                    " VALUES ({}, {}, true)"
                ).format(
                    sql.Identifier(STATE_SCHEMA),
                    sql.Literal(source_table),
                    sql.Literal(str(target)),
                )
            )

    def rejected_rowids(self, source_table: str) -> set[int]:
        rows = self.query(
            sql.SQL("SELECT row_key FROM {}.rejects WHERE source_table = %s").format(
                sql.Identifier(STATE_SCHEMA)
            ),
            (source_table,),
        )
        return {int(key.rpartition("=")[2]) for (key,) in rows}

    def constraint_exists(self, table: QName, name: str) -> bool:
        rows = self.query(
            "SELECT EXISTS (SELECT FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid"
            " JOIN pg_namespace n ON n.oid = r.relnamespace"
            " WHERE n.nspname = %s AND r.relname = %s AND c.conname = %s)",
            (table.schema, table.name, name),
        )
        return bool(rows[0][0])

    def primary_keyed(self, relations: Sequence[QName]) -> set[QName]:
        """Those of `relations` that have a primary key."""
        rows = self.query(
            "SELECT n.nspname, c.relname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE i.indisprimary AND (n.nspname, c.relname) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([r.schema for r in relations], [r.name for r in relations]),
        )
        return {QName(schema, name) for schema, name in rows}

    def finish_table(self, source_table: str) -> None:
        self.execute(
            sql.SQL(
                "UPDATE {}.checkpoints SET finished = true, updated_at = now()"
                " WHERE source_table = {}"
            ).format(sql.Identifier(STATE_SCHEMA), sql.Literal(source_table)),
            f"checkpoint of {source_table}",
        )

    # -- rows ---------------------------------------------------------------------------------

    def write_chunk(self, chunk: Chunk) -> tuple[int, int, list[Reject]]:
        """COPY the chunk, record its rejects and checkpoint, commit. Returns rows copied, the
        digest of the copied rows and every reject (the converters' and the server's).

        The first attempt sends each route in one COPY without savepoints; only when the server
        refuses a row is the chunk redone, bisected under savepoints."""
        doing = f"loading {chunk.target}"
        try:
            return self._write(chunk, careful=False)
        except (psycopg.DataError, psycopg.IntegrityError):
            pass  # a row the server refused: the chunk again, bisected
        except psycopg.Error as error:
            raise translate(error, self.where, doing, conn=self.conn) from error
        with self._translated(doing):
            return self._write(chunk, careful=True)

    def _write(self, chunk: Chunk, *, careful: bool) -> tuple[int, int, list[Reject]]:
        rejects = list(chunk.rejects)
        copied = 0
        digest = 0
        with self.conn.transaction():
            for relation, rows in chunk.routes.items():
                if not rows.lines:
                    continue
                statement = copy_statement(relation, chunk.columns)
                if careful:
                    refused, refused_rejects = self._bisect(statement, rows, chunk)
                else:
                    self._copy(statement, rows.lines)
                    refused, refused_rejects = [], []
                rejects.extend(refused_rejects)
                copied += len(rows.lines) - len(refused)
                if chunk.hashed:
                    digest += sum(rows.hashes) - sum(rows.hashes[i] for i in refused)
            self._record(chunk, copied, digest, rejects)
        return copied, digest, rejects

    def _copy(self, statement: sql.Composed, lines: list[bytes]) -> None:
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            copy.write(b"\n".join(lines))  # joined once: `+ b"\n"` would copy it again
            copy.write(b"\n")

    def _bisect(
        self, statement: sql.Composed, rows: RouteRows, chunk: Chunk
    ) -> tuple[list[int], list[Reject]]:
        """COPY `rows` in halves under savepoints until the refused rows stand alone."""
        refused: list[int] = []
        rejects: list[Reject] = []
        pending = [(0, len(rows.lines))]
        while pending:
            start, end = pending.pop()
            try:
                with self.conn.transaction():
                    self._copy(statement, rows.lines[start:end])
            except (psycopg.DataError, psycopg.IntegrityError) as error:
                if end - start == 1:
                    refused.append(start)
                    rejects.append(
                        Reject(
                            row_key=f"{chunk.key_column}={rows.rowids[start]}",
                            column=_column_of(error),
                            reason=f"refused by PostgreSQL: {server_message(error)}",
                        )
                    )
                    continue
                middle = (start + end) // 2
                pending.extend([(middle, end), (start, middle)])
        return refused, rejects

    def _record(self, chunk: Chunk, copied: int, digest: int, rejects: list[Reject]) -> None:
        schema = sql.Identifier(STATE_SCHEMA)
        if rejects:
            with self.conn.cursor() as cur:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {}.rejects (source_table, target_table, row_key,"
                        " column_name, reason, value) VALUES (%s, %s, %s, %s, %s, %s)"
                    ).format(schema),
                    [
                        (
                            chunk.source_table,
                            str(chunk.target),
                            r.row_key,
                            r.column,
                            r.reason,
                            r.value,
                        )
                        for r in rejects
                    ],
                )
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {}.chunks (source_table, after_rowid, last_rowid, rows_copied,"
                " rows_rejected, digest) VALUES (%s, %s, %s, %s, %s, %s)"
            ).format(schema),
            (
                chunk.source_table,
                chunk.after_rowid,
                chunk.last_rowid,
                copied,
                len(rejects),
                digest if chunk.hashed else None,
            ),
        )

    # -- after the rows -----------------------------------------------------------------------

    def leaves(self, relations: Sequence[QName]) -> list[QName]:
        """The tables that hold the rows of `relations` (their leaf partitions), largest first."""
        return [QName(schema, name) for schema, name in self.query(leaves_query(relations))]

    def digest(self, relation: QName, columns: Sequence[TargetColumn]) -> tuple[int, int]:
        """Row count and digest of one leaf table, read back (clients/migrate_readback.py)."""
        with self._translated(f"reading {relation} back"):
            return read_back(self.conn, relation, columns)
