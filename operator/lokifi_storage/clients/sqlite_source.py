"""The SQLite file being migrated: opened read-only, its schema, its rows in rowid order.

The file is opened with `mode=ro` (a Job can mount it read-only) and read inside one read
transaction, so every count, every chunk and the verification see the same snapshot even if
something still writes to the file. TEXT comes back as `bytearray` and BLOB as `bytes`: the
converters of domain/sqlite_values.py tell text from binary by that, and text that is not UTF-8
reaches them as bytes instead of failing the whole read.

Errors (in clients/errors.py): `SourceCorrupt` (not a SQLite file, or damaged),
`SourceLocked` (another process holds a lock that keeps readers out), each with one line naming
the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lokifi_storage.clients.errors import ClientError, SourceCorrupt, SourceLocked
from lokifi_storage.domain.migrate_schema import (
    ForeignKey,
    SourceColumn,
    SourceIndex,
    SourceTable,
)

__all__ = ["SqliteSource", "map_sqlite_error", "select_rows"]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def map_sqlite_error(path: Path, message: str) -> ClientError:
    """SQLite's error `message` as the one-line error of the migration (its exit code)."""
    text = message.lower()
    if "locked" in text or "busy" in text:
        return SourceLocked(
            f"{path}: the SQLite database is locked by another process "
            "(stop the app writing to it, then run again)"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return SourceCorrupt(f"{path}: not a SQLite database or damaged ({message.strip()})")
    return ClientError(f"{path}: SQLite error: {message.strip()}")


def select_rows(
    table: SourceTable, after_rowid: int | None, until_rowid: int | None
) -> tuple[str, tuple[int, ...]]:
    """The SELECT of (*copied columns, rowid) in rowid order in (`after_rowid`, `until_rowid`]
    (None: from the first, up to the last), and its parameters."""
    cols = ", ".join(_quote(c.name) for c in table.copied)
    bounds = [
        (f"rowid {op} ?", value)
        for op, value in ((">", after_rowid), ("<=", until_rowid))
        if value is not None
    ]
    where = (" WHERE " + " AND ".join(b for b, _ in bounds)) if bounds else ""
    params = tuple(v for _, v in bounds if v is not None)
    return f"SELECT {cols}, rowid FROM {_quote(table.name)}{where} ORDER BY rowid", params


class SqliteSource:
    """One read-only connection and one read transaction over the file."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        if not path.is_file():
            raise SourceCorrupt(f"{path}: no such file")
        uri = f"file:{path.resolve().as_posix()}?mode=ro"
        try:
            self.conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise self._map(error) from error
        self.conn.text_factory = bytearray
        try:
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as error:
            self.conn.close()
            raise self._map(error) from error

    def _map(self, error: sqlite3.Error) -> ClientError:
        return map_sqlite_error(self.path, str(error))

    def close(self) -> None:
        self.conn.close()

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(statement, params).fetchall()
        except sqlite3.Error as error:
            raise self._map(error) from error

    def check_integrity(self) -> None:
        """`PRAGMA quick_check`: damage found now, before anything is written."""
        rows = self.query("PRAGMA quick_check")
        found = [bytes(r[0]).decode("utf-8", "replace") for r in rows]
        if found != ["ok"]:
            raise SourceCorrupt(f"{self.path}: SQLite integrity check failed: {found[0][:200]}")

    # -- schema -------------------------------------------------------------------------------

    def table_names(self) -> list[str]:
        rows = self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
            "ORDER BY rowid"
        )
        return [bytes(r[0]).decode() for r in rows]

    def table(self, name: str) -> SourceTable:
        q = _quote(name)
        columns = tuple(
            SourceColumn(
                name=bytes(row[1]).decode(),
                declared=bytes(row[2] or b"").decode(),
                not_null=bool(row[3]),
                default=bytes(row[4]).decode() if row[4] is not None else None,
                pk=int(row[5]),
                hidden=int(row[6]) != 0,
            )
            for row in self.query(f"PRAGMA table_xinfo({q})")
        )
        sql_text = self.query("SELECT sql FROM sqlite_master WHERE name = ?", (name,))
        ddl = bytes(sql_text[0][0] or b"").decode().upper() if sql_text else ""
        keys: dict[int, list[tuple[str, str, str | None]]] = {}
        for row in self.query(f"PRAGMA foreign_key_list({q})"):
            to = bytes(row[4]).decode() if row[4] is not None else None
            keys.setdefault(int(row[0]), []).append(
                (bytes(row[2]).decode(), bytes(row[3]).decode(), to)
            )
        fks = tuple(
            ForeignKey(
                columns=tuple(c for _, c, _ in parts),
                table=parts[0][0],
                references=tuple(t for _, _, t in parts),
            )
            for parts in keys.values()
        )
        indexes: list[SourceIndex] = []
        for row in self.query(f"PRAGMA index_list({q})"):
            index_name, unique, origin = bytes(row[1]).decode(), bool(row[2]), bytes(row[3])
            if origin == b"pk":
                continue
            cols = self.query(f"PRAGMA index_info({_quote(index_name)})")
            names = [bytes(c[2]).decode() if c[2] is not None else None for c in cols]
            if any(n is None for n in names):
                continue  # an expression index: not carried over
            indexed = tuple(n for n in names if n)
            if index_name.startswith("sqlite_autoindex_"):
                # A UNIQUE constraint's index: named as PostgreSQL names a unique key.
                index_name = f"{name}_{'_'.join(indexed)}_key"[:63]
            indexes.append(SourceIndex(index_name, indexed, unique))
        return SourceTable(
            name=name,
            columns=columns,
            rowid="WITHOUT ROWID" not in ddl.replace("\n", " "),
            foreign_keys=fks,
            indexes=tuple(indexes),
        )

    # -- data ---------------------------------------------------------------------------------

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) FROM {_quote(table)}")[0][0])

    def rows(
        self,
        table: SourceTable,
        after_rowid: int | None,
        batch: int = 5000,
        until_rowid: int | None = None,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """(*columns, rowid) in rowid order in (`after_rowid`, `until_rowid`], `batch` rows at a
        time; None for either bound means from the first or up to the last."""
        statement, params = select_rows(table, after_rowid, until_rowid)
        try:
            cursor = self.conn.execute(statement, params)
            while True:
                block = cursor.fetchmany(batch)
                if not block:
                    return
                yield block
        except sqlite3.Error as error:
            raise self._map(error) from error

    def chunk_end(self, table: str, after_rowid: int | None, rows: int) -> int | None:
        """The rowid that ends a range of `rows` rows after `after_rowid` (fewer at the end of
        the table), or None when no row follows it. Walks the rowid b-tree only."""
        where = "" if after_rowid is None else " WHERE rowid > ?"
        params: tuple[Any, ...] = () if after_rowid is None else (after_rowid,)
        found = self.query(
            f"SELECT rowid FROM {_quote(table)}{where} ORDER BY rowid LIMIT 1 OFFSET ?",
            (*params, rows - 1),
        )
        if found:
            return int(found[0][0])
        last = self.query(f"SELECT max(rowid) FROM {_quote(table)}{where}", params)
        return int(last[0][0]) if last and last[0][0] is not None else None

    def visit_values(self, table: str, column: str, visit: Callable[[Any], None]) -> None:
        """Call `visit` with every non-NULL value of `column` (TEXT as bytes), in one scan run by
        SQLite itself: no rows cross into Python, only the values, and nothing is sorted.
        `visit` must not raise (an exception aborts the scan)."""
        c = _quote(column)

        self.conn.create_function("lokifi_visit", 1, visit)
        self.query(
            f"SELECT count(lokifi_visit(CASE WHEN typeof({c}) = 'text' THEN CAST({c} AS BLOB) "
            f"ELSE {c} END)) FROM {_quote(table)} WHERE {c} IS NOT NULL"
        )
