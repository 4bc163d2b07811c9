"""The compiled reader of SQLite rows into COPY lines (clients/_sqlite_copy.c), when built.

The migration's conversion is its critical path in Python: `sqlite3` makes an object per value
and each converter costs a call per value. The C module reads a range of rows with SQLite's C
API and writes the COPY lines, the row digests and the archive routing of the common value
kinds itself; every row holding something else comes back as the tuple `sqlite3` would have
made, for the Python converters (domain/sqlite_values.py) to convert or reject exactly as
before. So the results are those of the Python converters, byte for byte
(tests/unit/test_sqlite_copy.py), only made faster.

The module is optional: `available()` is False where it was not built (no C compiler or
headers when the package was installed) or when LOKIFI_MIGRATE_COMPILED=0 asks for the Python
path, and the migration then converts everything in Python.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.sqlite_source import map_sqlite_error, select_rows
from lokifi_storage.domain.migrate_chunks import RouteRows
from lokifi_storage.domain.migrate_schema import SourceTable

try:
    from lokifi_storage.clients import _sqlite_copy as _native
except ImportError:  # not built here: the Python converters do all the work
    _native = None  # type: ignore[assignment]

__all__ = [
    "CompiledBlock",
    "CompiledPlan",
    "CompiledReader",
    "available",
    "column_kind",
    "digest_lines",
    "hour_counts",
]

# The kinds the C module converts itself (its enum); any other type is 0: only its NULLs are
# written in C, a row with a value there goes to Python.
_KINDS = {
    "smallint": 1,
    "integer": 2,
    "bigint": 3,
    "text": 4,
    "timestamp with time zone": 6,
    "timestamp without time zone": 7,
    "jsonb": 8,
    "boolean": 9,
}
_VARCHAR = 5


def available() -> bool:
    """Whether the compiled reader is built and not switched off (LOKIFI_MIGRATE_COMPILED=0)."""
    return _native is not None and os.environ.get("LOKIFI_MIGRATE_COMPILED", "1") != "0"


def column_kind(pg_type: str) -> tuple[int, int]:
    """The C module's kind of a column of `pg_type` (format_type's spelling) and its length
    limit (varchar(n)); (0, 0) for a type it leaves to Python."""
    base, _, modifier = pg_type.partition("(")
    base = base.strip()
    args = [int(a) for a in re.findall(r"\d+", modifier)]
    if base == "character varying":
        return (_VARCHAR, args[0]) if args else (_KINDS["text"], 0)
    if args and base.startswith("timestamp"):
        return 0, 0
    return _KINDS.get(base, 0), 0


@dataclass(frozen=True)
class CompiledPlan:
    """What the C module needs to convert one table's rows: a kind, a limit and NOT NULL per
    copied column, the partition column's index and the archived ranges (ArchiveRouter's)."""

    kinds: tuple[int, ...]
    limits: tuple[int, ...]
    not_null: tuple[bool, ...]
    hashed: bool
    partition_index: int
    starts: list[bytes]
    ends: list[bytes]
    width: int


@dataclass
class CompiledBlock:
    main: RouteRows
    archive: RouteRows
    fallback: list[tuple[Any, ...]]  # rows for the Python converters, as sqlite3 makes them
    last_rowid: int | None  # the last row read, None when the range held none


class CompiledReader:
    """A read-only connection of the C module to the SQLite file, in one read transaction
    (as clients/sqlite_source.SqliteSource holds its own)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        if _native is None:
            raise ClientError("the compiled SQLite reader is not built")
        self.path = path
        uri = f"file:{path.resolve().as_posix()}?mode=ro"
        try:
            self._reader = _native.Reader(uri, busy_timeout_ms)
        except _native.Error as error:
            raise map_sqlite_error(path, str(error.args[0])) from error

    def close(self) -> None:
        self._reader.close()

    def convert(
        self,
        table: SourceTable,
        plan: CompiledPlan,
        after_rowid: int | None,
        until_rowid: int | None,
        batch: int = 5000,
    ) -> CompiledBlock:
        """Up to `batch` rows of (`after_rowid`, `until_rowid`] in rowid order, converted."""
        assert _native is not None
        statement, params = select_rows(table, after_rowid, until_rowid)
        try:
            main, archive, fallback, last = self._reader.convert(
                statement,
                params,
                plan.kinds,
                plan.limits,
                plan.not_null,
                plan.hashed,
                plan.partition_index,
                plan.starts,
                plan.ends,
                plan.width,
                batch,
            )
        except _native.Error as error:
            raise map_sqlite_error(self.path, str(error.args[0])) from error
        return CompiledBlock(RouteRows(*main), RouteRows(*archive), fallback, last)


def hour_counts(
    path: Path, table: str, column: str, other: Callable[[Any], None], *, busy_timeout_ms: int
) -> dict[dt.datetime, int]:
    """Rows per UTC hour of the naive ISO times (`YYYY-MM-DD HH:MM:SS`, or with T) of
    `column`, counted in C in one scan; every other non-NULL value goes to `other` (TEXT as
    bytes), as SqliteSource.visit_values would have passed it."""
    reader = CompiledReader(path, busy_timeout_ms=busy_timeout_ms)
    quoted = ['"' + name.replace('"', '""') + '"' for name in (column, table)]
    try:
        counts = reader._reader.hours(
            f"SELECT {quoted[0]} FROM {quoted[1]} WHERE {quoted[0]} IS NOT NULL", other
        )
    except _native.Error as error:
        raise map_sqlite_error(path, str(error.args[0])) from error
    finally:
        reader.close()
    return {
        dt.datetime(
            key // 1_000_000, key // 10_000 % 100, key // 100 % 100, key % 100, tzinfo=dt.UTC
        ): rows
        for key, rows in counts.items()
    }


def digest_lines(
    lines: Sequence[bytes | bytearray | memoryview], stamps: bytes = b""
) -> tuple[int, int]:
    """Count and summed row digests of `lines` as COPY TO sends them (each with its newline,
    which is not hashed): in C when built, else hashlib line by line. `stamps` has a byte per
    column, 1 for timestamptz and 2 for timestamp: those fields, as PostgreSQL prints them
    (`2024-03-05 10:11:12.5+00`), are hashed as the converters write them
    (`2024-03-05 10:11:12.500000+00`), which spares the server a to_char per value."""
    if available():
        assert _native is not None
        return _native.digest_lines(lines, stamps)
    total = 0
    for line in lines:
        text = bytes(line[:-1])
        if any(stamps):
            text = b"\t".join(
                _stamp_field(field, stamps[i] if i < len(stamps) else 0)
                for i, field in enumerate(text.split(b"\t"))
            )
        total += int.from_bytes(
            hashlib.md5(text, usedforsecurity=False).digest()[:8], "big", signed=True
        )
    return len(lines), total


_PRINTED_STAMP = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{1,6}))?")


def _stamp_field(field: bytes, kind: int) -> bytes:
    """The Python twin of the C module's put_stamp_field: a field of another shape as it is."""
    if not kind:
        return field
    body = field
    if kind == 1:
        if not field.endswith(b"+00"):
            return field
        body = field[:-3]
    match = _PRINTED_STAMP.fullmatch(body)
    if match is None:
        return field
    fraction = (match.group(2) or b"").ljust(6, b"0")
    return match.group(1) + b"." + fraction + (b"+00" if kind == 1 else b"")


def md5_head(line: bytes) -> int:
    """The C module's row digest of `line` (for the tests: it must equal row_digest's)."""
    assert _native is not None
    return _native.md5_head(line)
