"""Rows of one SQLite table turned into COPY chunks: conversion, routing and the row digests.

Ranges of rows are converted in a pool of processes while the writers COPY earlier chunks, so
converting in Python and loading in PostgreSQL overlap and the conversion is not held to one
core by the interpreter lock; a thread of the main process hands the results to the writers in
the order the ranges follow each other.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue
import sys
import threading
from array import array
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter, methodcaller, not_
from pathlib import Path
from typing import Any

from lokifi_storage.clients.migrate_target import FIRST_ROWID, Chunk, Reject, RouteRows
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.domain.copy_fields import Converter, Rejected
from lokifi_storage.domain.migrate_plan import ArchiveRouter
from lokifi_storage.domain.migrate_schema import SourceTable, TargetTable
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.sqlite_columns import COPY_NULL, ColumnConverter, column_converter_for
from lokifi_storage.domain.sqlite_values import converter_for, float_bits

__all__ = [
    "ChunkProducer",
    "ConvertSetup",
    "RowConverter",
    "close_sources",
    "conversion_pool",
    "row_digest",
]

NULL = COPY_NULL
_TAB_JOIN = b"\t".join
_MD5 = hashlib.md5
_DIGEST = methodcaller("digest")
_FIRST_8 = itemgetter(slice(0, 8))
PREVIEW_CHARS = 200


def row_digest(line: bytes) -> int:
    """The first 64 bits of md5(line) as a signed integer: what the server sums per row."""
    return int.from_bytes(hashlib.md5(line, usedforsecurity=False).digest()[:8], "big", signed=True)


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytearray):
        text = bytes(value).decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    elif isinstance(value, bytes):
        text = "x'" + value[: PREVIEW_CHARS // 2].hex() + "'"
    else:
        text = repr(value)
    return text[:PREVIEW_CHARS]


@dataclass
class _Block:
    routes: dict[QName, RouteRows]
    rejects: list[Reject]
    last_rowid: int
    size: int


class RowConverter:
    """Converts rows of `source` for `target`; routes old rows to `archive` when given."""

    def __init__(
        self,
        source: SourceTable,
        target: TargetTable,
        *,
        archive: QName | None = None,
        router: ArchiveRouter | None = None,
        hashed: bool = True,
    ) -> None:
        self.source = source
        self.target = target
        self.columns = tuple(c.name for c in source.copied)
        self.converters: list[Converter] = []
        self.column_converters: list[ColumnConverter] = []
        self.not_null: list[int] = []
        self.bits: list[int] = []  # double precision columns: digested by their bits
        for i, name in enumerate(self.columns):
            column = target.column(name)
            assert column is not None, f"{target.qname}.{name} checked before the load"
            self.converters.append(converter_for(column.type))
            self.column_converters.append(column_converter_for(column.type))
            if column.not_null:
                self.not_null.append(i)
            if column.type == "double precision":
                self.bits.append(i)
        self.key_column = source.rowid_alias or "rowid"
        self.archive = archive if router else None
        self.router = router if archive is not None and router else None
        self.partition_index = (
            self.columns.index(target.partition_column)
            if target.partition_column in self.columns
            else -1
        )
        self.hashed = hashed

    def _reject(self, rowid: int, row: tuple[Any, ...]) -> Reject:
        """The first column of `row` that does not convert, and why."""
        for i, (convert, value) in enumerate(zip(self.converters, row, strict=False)):
            name = self.columns[i]
            if value is None:
                if i in self.not_null:
                    return Reject(
                        f"{self.key_column}={rowid}", name, "NULL in a NOT NULL column", None
                    )
                continue
            try:
                convert(value)
            except Rejected as error:
                return Reject(f"{self.key_column}={rowid}", name, str(error), _preview(value))
        raise AssertionError("a rejected row converts")  # pragma: no cover

    def _columnwise(self, rows: list[tuple[Any, ...]]) -> _Block | None:
        """`block` column by column (domain/sqlite_columns.column_converter_for), hashing and
        routing in C as well; None when a value is to be rejected, or a NULL sits in a NOT
        NULL column, so that `block` goes row by row and names it."""
        columns = list(zip(*rows, strict=True))
        for i in self.not_null:
            if None in columns[i]:
                return None
        fields: list[list[Any]] = []
        for convert, values in zip(self.column_converters, columns, strict=False):
            out = convert(values)
            if out is None:
                return None
            fields.append(out)
        lines: list[bytes] = list(map(_TAB_JOIN, zip(*fields, strict=True)))
        rowids = list(columns[-1])
        hashes: list[int] = []
        if self.hashed:
            packed = array("q")
            packed.frombytes(b"".join(map(_FIRST_8, map(_DIGEST, map(_MD5, lines)))))
            if sys.byteorder == "little":
                packed.byteswap()  # the digest's first 64 bits are read big-endian
            hashes = packed.tolist()
        main = RouteRows(lines, rowids, hashes)
        routes = {self.target.qname: main}
        if self.archive is not None:
            assert self.router is not None
            old = list(map(self.router.archived, fields[self.partition_index]))
            if any(old):
                young = list(map(not_, old))
                routes[self.archive] = RouteRows(
                    list(compress(lines, old)),
                    list(compress(rowids, old)),
                    list(compress(hashes, old)) if hashes else [],
                )
                main.lines = list(compress(lines, young))
                main.rowids = list(compress(rowids, young))
                main.hashes = list(compress(hashes, young)) if hashes else []
            else:
                routes[self.archive] = RouteRows()
        return _Block(routes, [], rowids[-1], sum(map(len, lines)))

    def block(self, rows: list[tuple[Any, ...]]) -> _Block:
        """Convert `rows` ((*columns, rowid) tuples) into lines per destination."""
        if rows and not self.bits:
            whole = self._columnwise(rows)
            if whole is not None:
                return whole
        main = RouteRows()
        routes = {self.target.qname: main}
        other = None
        if self.archive is not None:
            other = routes.setdefault(self.archive, RouteRows())
        rejects: list[Reject] = []
        converters = self.converters
        not_null = self.not_null
        router = self.router
        pidx = self.partition_index
        hashed = self.hashed
        bits = self.bits
        md5 = hashlib.md5
        from_bytes = int.from_bytes
        size = 0
        rowid = 0
        for row in rows:
            rowid = row[-1]
            try:
                fields = [
                    NULL if v is None else c(v) for c, v in zip(converters, row, strict=False)
                ]
            except Rejected:
                rejects.append(self._reject(rowid, row))
                continue
            if not_null and any(row[i] is None for i in not_null):
                rejects.append(self._reject(rowid, row))
                continue
            line = b"\t".join(fields)
            size += len(line)
            target = other if router is not None and router.archived(fields[pidx]) else main
            assert target is not None
            target.lines.append(line)
            target.rowids.append(rowid)
            if hashed:
                if bits:
                    canon = list(fields)
                    for i in bits:
                        if canon[i] != NULL:
                            canon[i] = float_bits(canon[i])
                    line = b"\t".join(canon)
                target.hashes.append(
                    from_bytes(md5(line, usedforsecurity=False).digest()[:8], "big", signed=True)
                )
        return _Block(routes, rejects, rowid, size)


@dataclass(frozen=True)
class ConvertSetup:
    """What a conversion process needs to read and convert one table: plain, picklable data
    (the converters themselves are rebuilt in the process)."""

    sqlite_path: Path
    busy_timeout_ms: int
    source: SourceTable
    target: TargetTable
    archive: QName | None
    router: ArchiveRouter | None
    hashed: bool
    skip: tuple[tuple[int, int], ...]
    chunk_bytes: int


@dataclass
class _Converted:
    """One range's rows, converted in a process: (after_rowid, last_rowid] and what it holds."""

    routes: dict[QName, RouteRows]
    rejects: list[Reject]
    last_rowid: int


_opened: dict[Path, SqliteSource] = {}  # a conversion process's connection, per file


def _convert_range(setup: ConvertSetup, after: int | None, until: int) -> _Converted:
    """Runs in a conversion process: the rows of (after, until] read from the process's own
    read-only connection and converted, stopping early once `chunk_bytes` are reached (the
    caller asks again for the rest)."""
    source = _opened.get(setup.sqlite_path)
    if source is None:
        source = _opened[setup.sqlite_path] = SqliteSource(
            setup.sqlite_path, busy_timeout_ms=setup.busy_timeout_ms
        )
    converter = RowConverter(
        setup.source,
        setup.target,
        archive=setup.archive,
        router=setup.router,
        hashed=setup.hashed,
    )
    routes: dict[QName, RouteRows] = {}
    rejects: list[Reject] = []
    last = after if after is not None else FIRST_ROWID
    size = 0
    skip = setup.skip
    for fetched in source.rows(setup.source, after, 5000, until_rowid=until):
        last = fetched[-1][-1]
        if skip:
            fetched = [row for row in fetched if not any(a < row[-1] <= b for a, b in skip)]
        block = converter.block(fetched)
        rejects.extend(block.rejects)
        for relation, part in block.routes.items():
            into = routes.setdefault(relation, RouteRows())
            into.lines.extend(part.lines)
            into.rowids.extend(part.rowids)
            into.hashes.extend(part.hashes)
        size += block.size
        if size >= setup.chunk_bytes:
            break
    return _Converted(routes, rejects, last)


def conversion_pool(processes: int) -> Executor:
    """Processes that read and convert ranges of rows, each with its own SQLite connection:
    conversion is Python work, which one process's threads cannot spread over several cores.
    Started fresh ("spawn"): the parent holds threads and open connections a fork would copy.
    With 0, one thread of this process does it (less memory and start-up, one core)."""
    if processes <= 0:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate-convert")
    return ProcessPoolExecutor(
        max_workers=processes, mp_context=multiprocessing.get_context("spawn")
    )


def close_sources() -> None:
    """Close the connections a conversion thread of this process opened."""
    while _opened:
        _opened.popitem()[1].close()


class ChunkProducer:
    """Cuts the table into ranges of `chunk_rows` rowids and has `pool` convert them, a few
    ranges ahead of the writers; writers take chunks with `next()` until it returns None.

    The ranges in flight (at most `ahead`) and the queue (two chunks) bound memory whatever
    the file size. Resuming, it starts after `after_rowid` and leaves out the rows of `skip`,
    the ranges that chunks committed beyond it (several writers finish out of order)."""

    def __init__(
        self,
        source: SqliteSource,
        pool: Executor,
        setup: ConvertSetup,
        *,
        after_rowid: int | None,
        chunk_rows: int,
        ahead: int,
    ) -> None:
        self.source = source
        self.pool = pool
        self.setup = setup
        self.after_rowid = after_rowid
        self.chunk_rows = chunk_rows
        self.ahead = max(ahead, 1)
        self.columns = tuple(c.name for c in setup.source.copied)
        self.queue: queue.Queue[Chunk | BaseException | None] = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="migrate-convert", daemon=True)

    def _put(self, item: Chunk | BaseException | None) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _chunk(self, after: int | None, converted: _Converted) -> Chunk:
        setup = self.setup
        return Chunk(
            source_table=setup.source.name,
            target=setup.target.qname,
            columns=self.columns,
            after_rowid=FIRST_ROWID if after is None else after,
            last_rowid=converted.last_rowid,
            routes=converted.routes,
            rejects=converted.rejects,
            key_column=setup.source.rowid_alias or "rowid",
            hashed=setup.hashed,
        )

    def _run(self) -> None:
        try:
            pending: deque[tuple[int | None, int, Future[_Converted]]] = deque()
            start = self.after_rowid
            exhausted = False
            table = self.setup.source.name
            while not self.stop.is_set():
                while not exhausted and len(pending) < self.ahead:
                    end = self.source.chunk_end(table, start, self.chunk_rows)
                    if end is None:
                        exhausted = True
                        break
                    pending.append(
                        (start, end, self.pool.submit(_convert_range, self.setup, start, end))
                    )
                    start = end
                if not pending:
                    self._put(None)
                    return
                after, end, future = pending.popleft()
                converted = future.result()
                if converted.last_rowid < end:  # stopped at chunk_bytes: the rest next
                    rest = converted.last_rowid
                    pending.appendleft(
                        (rest, end, self.pool.submit(_convert_range, self.setup, rest, end))
                    )
                if not self._put(self._chunk(after, converted)):
                    return
        except BaseException as error:  # handed to a writer, which raises it
            self._put(error)

    def start(self) -> None:
        self.thread.start()

    def next(self) -> Chunk | None:
        """The next chunk, or None when there are no more (for every writer that asks)."""
        item = self.queue.get()
        if item is None or isinstance(item, BaseException):
            self.queue.put(item)  # the other writers see the end (or the error) too
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
