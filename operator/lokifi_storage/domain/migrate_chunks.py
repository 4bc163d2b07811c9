"""What the SQLite migration moves and records, as plain data: a chunk of converted rows bound
for its relations, a row it rejects, and a source table's checkpoint. Pure.

Apart from the client that writes them (clients/migrate_target.py) because three sides share
them: the conversion builds chunks and rejects (jobs/migrate_convert.py, in other processes,
so they are picklable data), the client commits them, and the run reads checkpoints back to
resume exactly after the rows committed chunks cover (`Checkpoint.resume_point`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lokifi_storage.domain.partitions.catalog import QName

__all__ = ["FIRST_ROWID", "Checkpoint", "Chunk", "Reject", "RouteRows"]


@dataclass(frozen=True)
class Reject:
    row_key: str
    column: str | None
    reason: str
    value: str | None = None


@dataclass
class RouteRows:
    """Lines (COPY text, no newline) bound for one relation, with their rowids and digests."""

    lines: list[bytes] = field(default_factory=list)
    rowids: list[int] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)


@dataclass
class Chunk:
    source_table: str
    target: QName
    columns: tuple[str, ...]
    after_rowid: int  # the chunk covers source rows (after_rowid, last_rowid]
    last_rowid: int
    routes: dict[QName, RouteRows]
    rejects: list[Reject]
    key_column: str  # how a rowid is named in a reject's key
    hashed: bool

    @property
    def rows(self) -> int:
        return sum(len(r.lines) for r in self.routes.values()) + len(self.rejects)


FIRST_ROWID = -(2**63)  # after_rowid of a table's first chunk


@dataclass(frozen=True)
class Checkpoint:
    """A source table's progress: the sums over its committed chunks, and their ranges."""

    source_table: str
    target_table: str
    finished: bool
    created: bool = False
    rows_copied: int = 0
    rows_rejected: int = 0
    digest: int | None = 0  # None when a chunk was loaded without hashing
    ranges: tuple[tuple[int, int], ...] = ()  # (after_rowid, last_rowid] of every chunk

    def resume_point(self) -> tuple[int | None, tuple[tuple[int, int], ...]]:
        """The rowid the committed chunks reach without a gap, and the ranges committed
        beyond it (by writers that finished a later chunk before the run stopped)."""
        by_start = {after: last for after, last in self.ranges}
        end = FIRST_ROWID
        while end in by_start:
            end = by_start.pop(end)
        beyond = tuple(sorted((a, b) for a, b in by_start.items() if b > end))
        return (None if end == FIRST_ROWID else end), beyond
