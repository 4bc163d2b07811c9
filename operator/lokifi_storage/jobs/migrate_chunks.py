"""Ranges of a SQLite table's rows converted into COPY chunks, in a pool, ahead of the writers.

Ranges of rows are converted in a pool of processes while the writers COPY earlier chunks, so
converting in Python and loading in PostgreSQL overlap and the conversion is not held to one
core by the interpreter lock; a thread of the main process hands the results to the writers in
the order the ranges follow each other. Apart from the conversion itself
(jobs/migrate_convert.py) because this is the plumbing around it: processes, queues, resuming
after the rows committed chunks already cover.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lokifi_storage.clients.sqlite_copy import CompiledReader, available
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.domain.migrate_chunks import FIRST_ROWID, Chunk, Reject, RouteRows, add_routes
from lokifi_storage.domain.migrate_plan import ArchiveRouter
from lokifi_storage.domain.migrate_schema import SourceTable, TargetTable
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.jobs.migrate_convert import RowConverter

__all__ = [
    "ChunkProducer",
    "ConvertSetup",
    "chunk_ranges",
    "close_sources",
    "conversion_pool",
]


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
    chunk_bytes: int


@dataclass
class _Converted:
    """One range's rows, converted in a process: (after_rowid, last_rowid] and what it holds."""

    routes: dict[QName, RouteRows]
    rejects: list[Reject]
    last_rowid: int


_opened: dict[Path, SqliteSource] = {}  # a conversion process's connection, per file
_compiled: dict[Path, CompiledReader] = {}  # the same for the compiled reader


def _convert_compiled(
    setup: ConvertSetup, converter: RowConverter, after: int | None, until: int
) -> _Converted:
    """_convert_range through the compiled reader (clients/sqlite_copy.py): the common values
    converted in C, the other rows by `converter` as always."""
    reader = _compiled.get(setup.sqlite_path)
    if reader is None:
        reader = _compiled[setup.sqlite_path] = CompiledReader(
            setup.sqlite_path, busy_timeout_ms=setup.busy_timeout_ms
        )
    plan = converter.compiled_plan()
    routes: dict[QName, RouteRows] = {}
    rejects: list[Reject] = []
    last = after if after is not None else FIRST_ROWID
    size = 0
    cursor = after
    while True:
        compiled = reader.convert(setup.source, plan, cursor, until)
        if compiled.last_rowid is None:
            break
        last = cursor = compiled.last_rowid
        block = converter.from_compiled(compiled)
        rejects.extend(block.rejects)
        add_routes(routes, block.routes)
        size += block.size
        if size >= setup.chunk_bytes:
            break
    return _Converted(routes, rejects, last)


def _convert_range(setup: ConvertSetup, after: int | None, until: int) -> _Converted:
    """Runs in a conversion process: the rows of (after, until] read from the process's own
    read-only connection and converted, stopping early once `chunk_bytes` are reached (the
    caller asks again for the rest)."""
    converter = RowConverter(
        setup.source,
        setup.target,
        archive=setup.archive,
        router=setup.router,
        hashed=setup.hashed,
    )
    if available():
        return _convert_compiled(setup, converter, after, until)
    source = _opened.get(setup.sqlite_path)
    if source is None:
        source = _opened[setup.sqlite_path] = SqliteSource(
            setup.sqlite_path, busy_timeout_ms=setup.busy_timeout_ms
        )
    routes: dict[QName, RouteRows] = {}
    rejects: list[Reject] = []
    last = after if after is not None else FIRST_ROWID
    size = 0
    for fetched in source.rows(setup.source, after, 5000, until_rowid=until):
        last = fetched[-1][-1]
        block = converter.block(fetched)
        rejects.extend(block.rejects)
        add_routes(routes, block.routes)
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
    while _compiled:
        _compiled.popitem()[1].close()


def chunk_ranges(
    source: SqliteSource,
    table: str,
    gaps: tuple[tuple[int | None, int | None], ...],
    chunk_rows: int,
) -> Iterator[tuple[int | None, int]]:
    """(after, end] of each range to convert, in order: `chunk_rows` rowids at a time inside
    each gap, the last range of a gap cut at the gap's end; a gap without rows gives none.
    A gap's end is a committed chunk's start, so no range crosses into committed rows."""
    for start, until in gaps:
        while until is None or start is None or start < until:
            end = source.chunk_end(table, start, chunk_rows)
            if end is None:
                break
            if until is not None and end > until:
                first = source.chunk_end(table, start, 1)
                if first is None or first > until:
                    break
                end = until
            yield start, end
            start = end


class ChunkProducer:
    """Cuts the table into ranges of `chunk_rows` rowids and has `pool` convert them, a few
    ranges ahead of the writers; writers take chunks with `next()` until it returns None.

    The ranges in flight (at most `ahead`) and the queue (two chunks) bound memory whatever
    the file size. Resuming, it converts only `gaps`, the ranges no committed chunk covers
    (Checkpoint.gaps), and ends its ranges where a gap ends, so its chunks line up with the
    committed ones even when several writers committed them out of order."""

    def __init__(
        self,
        source: SqliteSource,
        pool: Executor,
        setup: ConvertSetup,
        *,
        gaps: tuple[tuple[int | None, int | None], ...],
        chunk_rows: int,
        ahead: int,
    ) -> None:
        self.source = source
        self.pool = pool
        self.setup = setup
        self.gaps = gaps
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
            ranges = chunk_ranges(self.source, self.setup.source.name, self.gaps, self.chunk_rows)
            exhausted = False
            while not self.stop.is_set():
                while not exhausted and len(pending) < self.ahead:
                    planned = next(ranges, None)
                    if planned is None:
                        exhausted = True
                        break
                    start, end = planned
                    pending.append(
                        (start, end, self.pool.submit(_convert_range, self.setup, start, end))
                    )
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
