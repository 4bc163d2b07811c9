"""Rows of one SQLite table turned into COPY lines: conversion, routing and the row digests.

`RowConverter` converts a batch of rows for one target table, column by column where it can
(domain/sqlite_columns.py), row by row where a value is rejected, and sends old rows to the
archive table. Where the batches are read and in which process is jobs/migrate_chunks.py's
business; this module is what runs inside a conversion process, and the verification uses it
too to recompute the source's digest.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter, methodcaller, not_
from typing import Any

from lokifi_storage.clients.sqlite_copy import CompiledBlock, CompiledPlan, column_kind
from lokifi_storage.domain.copy_fields import Converter, Rejected
from lokifi_storage.domain.migrate_chunks import Reject, RouteRows, add_routes
from lokifi_storage.domain.migrate_plan import ArchiveRouter
from lokifi_storage.domain.migrate_schema import SourceTable, TargetTable
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.sqlite_columns import COPY_NULL, ColumnConverter, column_converter_for
from lokifi_storage.domain.sqlite_values import converter_for, float_bits

__all__ = ["RowConverter", "row_digest"]

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

    def compiled_plan(self) -> CompiledPlan:
        """The same conversion, said to the compiled reader (clients/sqlite_copy.py)."""
        kinds: list[int] = []
        limits: list[int] = []
        for name in self.columns:
            column = self.target.column(name)
            assert column is not None
            kind, limit = column_kind(column.type)
            kinds.append(kind)
            limits.append(limit)
        router = self.router
        return CompiledPlan(
            kinds=tuple(kinds),
            limits=tuple(limits),
            not_null=tuple(i in self.not_null for i in range(len(self.columns))),
            hashed=self.hashed,
            partition_index=self.partition_index if router is not None else -1,
            starts=list(router.starts) if router is not None else [],
            ends=list(router.ends) if router is not None else [],
            width=router.width if router is not None else 0,
        )

    def from_compiled(self, compiled: CompiledBlock) -> _Block:
        """What the compiled reader converted, plus the rows it handed back converted (or
        rejected) here, row by row as always."""
        routes = {self.target.qname: compiled.main}
        if self.archive is not None:
            routes[self.archive] = compiled.archive
        size = sum(map(len, compiled.main.lines)) + sum(map(len, compiled.archive.lines))
        rejects: list[Reject] = []
        if compiled.fallback:
            rest = self.block(compiled.fallback)
            rejects = rest.rejects
            size += rest.size
            add_routes(routes, rest.routes)
        last = compiled.last_rowid if compiled.last_rowid is not None else 0
        return _Block(routes, rejects, last, size)

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
