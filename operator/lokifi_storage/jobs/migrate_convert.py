"""Rows of one SQLite table turned into COPY chunks: conversion, routing and the row digests.

Runs in its own thread while the main thread COPYs the previous chunk, so converting in Python
and loading in PostgreSQL overlap; the queue between them holds at most two chunks, which is
what bounds memory whatever the file size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from typing import Any

from lokifi_storage.clients.migrate_target import FIRST_ROWID, Chunk, Reject, RouteRows
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.domain.migrate_plan import ArchiveRouter
from lokifi_storage.domain.migrate_schema import SourceTable, TargetTable
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.sqlite_values import Converter, Rejected, converter_for, float_bits

__all__ = ["ChunkProducer", "RowConverter", "row_digest"]

NULL = b"\\N"
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
        self.not_null: list[int] = []
        self.bits: list[int] = []  # double precision columns: digested by their bits
        for i, name in enumerate(self.columns):
            column = target.column(name)
            assert column is not None, f"{target.qname}.{name} checked before the load"
            self.converters.append(converter_for(column.type))
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

    def block(self, rows: list[tuple[Any, ...]]) -> _Block:
        """Convert `rows` ((*columns, rowid) tuples) into lines per destination."""
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


class ChunkProducer:
    """Reads and converts in a thread; writers take chunks with `next()` until it returns None.

    Resuming, it starts after `after_rowid` and leaves out the rows of `skip`, the ranges that
    chunks committed beyond it (several writers finish out of order)."""

    def __init__(
        self,
        source: SqliteSource,
        converter: RowConverter,
        *,
        after_rowid: int | None,
        chunk_rows: int,
        chunk_bytes: int,
        skip: tuple[tuple[int, int], ...] = (),
    ) -> None:
        self.source = source
        self.converter = converter
        self.after_rowid = after_rowid
        self.chunk_rows = chunk_rows
        self.chunk_bytes = chunk_bytes
        self.skip = skip
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

    def _chunk(self, blocks: list[_Block], after: int) -> Chunk:
        routes: dict[QName, RouteRows] = {}
        rejects: list[Reject] = []
        for block in blocks:
            rejects.extend(block.rejects)
            for relation, rows in block.routes.items():
                into = routes.setdefault(relation, RouteRows())
                into.lines.extend(rows.lines)
                into.rowids.extend(rows.rowids)
                into.hashes.extend(rows.hashes)
        c = self.converter
        return Chunk(
            source_table=c.source.name,
            target=c.target.qname,
            columns=c.columns,
            after_rowid=after,
            last_rowid=blocks[-1].last_rowid,
            routes=routes,
            rejects=rejects,
            key_column=c.key_column,
            hashed=c.hashed,
        )

    def _unskipped(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [row for row in rows if not any(a < row[-1] <= b for a, b in self.skip)]

    def _run(self) -> None:
        try:
            blocks: list[_Block] = []
            rows = size = 0
            after = FIRST_ROWID if self.after_rowid is None else self.after_rowid
            batch = min(5000, self.chunk_rows)
            for fetched in self.source.rows(self.converter.source, self.after_rowid, batch):
                if self.stop.is_set():
                    return
                last = fetched[-1][-1]
                block = self.converter.block(self._unskipped(fetched) if self.skip else fetched)
                block.last_rowid = last
                blocks.append(block)
                rows += len(fetched)
                size += block.size
                if rows >= self.chunk_rows or size >= self.chunk_bytes:
                    if not self._put(self._chunk(blocks, after)):
                        return
                    after = last
                    blocks, rows, size = [], 0, 0
            if blocks and not self._put(self._chunk(blocks, after)):
                return
            self._put(None)
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
