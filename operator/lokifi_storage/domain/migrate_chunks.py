"""What the SQLite migration moves and records, as plain data: a chunk of converted rows bound
for its relations, a row it rejects, and a source table's checkpoint. Pure.

Apart from the client that writes them (clients/migrate_target.py) because three sides share
them: the conversion builds chunks and rejects (jobs/migrate_convert.py, in other processes,
so they are picklable data), the client commits them, and the run reads checkpoints back to
resume exactly on the rows no committed chunk covers (`Checkpoint.gaps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lokifi_storage.domain.partitions.catalog import QName

__all__ = ["FIRST_ROWID", "Checkpoint", "Chunk", "Reject", "RouteRows", "add_routes"]


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


def add_routes(into: dict[QName, RouteRows], routes: dict[QName, RouteRows]) -> None:
    """Append each relation's rows of `routes` to its rows in `into`, in order: a chunk is
    gathered from several converted blocks, and a compiled block from its C and Python rows."""
    for relation, part in routes.items():
        gathered = into.setdefault(relation, RouteRows())
        gathered.lines.extend(part.lines)
        gathered.rowids.extend(part.rowids)
        gathered.hashes.extend(part.hashes)


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

    def gaps(self) -> tuple[tuple[int | None, int | None], ...]:
        """The rowid ranges (after, until] no committed chunk covers, in order; None for
        `after` means from the first row, for `until` up to the last (the open tail).

        A resumed run converts exactly these and cuts its chunks inside them, so none of its
        chunks starts where a committed one does (the checkpoint key is the start) nor holds
        a committed row, whichever chunks several writers committed before the run stopped."""
        found: list[tuple[int | None, int | None]] = []
        reached = FIRST_ROWID
        for after, last in sorted(self.ranges):
            if after > reached:
                found.append((None if reached == FIRST_ROWID else reached, after))
            reached = max(reached, last)
        found.append((None if reached == FIRST_ROWID else reached, None))
        return tuple(found)
