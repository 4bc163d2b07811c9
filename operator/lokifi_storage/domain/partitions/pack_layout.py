"""The packed form of an archived month: its layout and names. Pure.

PostgreSQL compresses a value only when its row passes about 2 kB, and most chat messages are
shorter, so rewriting a month row by row saves nothing. Packing sorts a month's rows by the
spec's `archive.segmentBy` columns (user and thread by default) and time, and stores them as
rows of arrays, one array per column: whole groups (threads) side by side in one stored row
until it holds `archive.packRows` rows. TOAST compresses each array; the more rows a stored
row holds, the more repetition pglz finds within its 4 kB window (one thread alone is about
4 kB of chat: 1.8x; 512 rows: about 3x, bench/RESULTS.md), at the price of decompressing that
many rows to read one thread. `packRows: 1` stores each group alone.

Layout of `<archive schema>.<table>_packed` (PARTITION BY RANGE (lokifi_first), one partition
per packed month, named like the month it replaced; its COMMENT names the segment columns):

    lokifi_keys  text[]        the groups in this stored row: row(<segment columns>)::text,
                               GIN-indexed, so one group's stored rows are found by key
    lokifi_rows  integer       rows in the stored row
    lokifi_first, lokifi_last  first and last value of the partition key in it
    <every column>             an array per column, in (segment, partition key) order

A group is never split across stored rows unless it has more than GROUP_ROWS rows. The view
`<table>_rows` and the function `<table>_group(<segment columns>)` read it back as the
original rows (domain/partitions/pack_steps.py writes their SQL).
"""

from __future__ import annotations

from dataclasses import dataclass

from lokifi_storage.domain.partitions.catalog import Column, QName

__all__ = [
    "DEFAULT_PACK_ROWS",
    "GROUP_ROWS",
    "META_COLUMNS",
    "PackLayout",
    "layout_problem",
    "packed_parent",
    "read_function",
    "rows_view",
    "segment_comment",
    "stored_segment",
]

GROUP_ROWS = 1000  # at most this many rows of one group per stored row (huge threads)
DEFAULT_PACK_ROWS = 512
META_COLUMNS = ("lokifi_keys", "lokifi_rows", "lokifi_first", "lokifi_last")
RESERVED_COLUMNS = (*META_COLUMNS, "lokifi_n", "lokifi_g", "lokifi_start")  # used while packing
_COMMENT_PREFIX = "lokifi packed; segmentBy="


def packed_parent(archive: QName) -> QName:
    return QName(archive.schema, f"{archive.name}_packed")


def rows_view(archive: QName) -> QName:
    return QName(archive.schema, f"{archive.name}_rows")


def read_function(archive: QName) -> QName:
    return QName(archive.schema, f"{archive.name}_group")


def segment_comment(segment: tuple[str, ...]) -> str:
    """The packed table's COMMENT: how its months were grouped, read back by stored_segment."""
    return _COMMENT_PREFIX + ",".join(segment)


def stored_segment(comment: str | None) -> tuple[str, ...]:
    """The segment columns of an existing packed table, from its COMMENT; () when unknown."""
    if not comment or not comment.startswith(_COMMENT_PREFIX):
        return ()
    return tuple(c for c in comment[len(_COMMENT_PREFIX) :].split(",") if c)


@dataclass(frozen=True)
class PackLayout:
    """How one table's months are packed: its columns (in order), the segment columns, the
    partition key, the TOAST compression of the arrays, and rows per stored row."""

    archive: QName
    columns: tuple[Column, ...]
    segment: tuple[str, ...]
    time_column: str
    compression: str = "pglz"
    pack_rows: int = DEFAULT_PACK_ROWS

    @property
    def parent(self) -> QName:
        return packed_parent(self.archive)

    @property
    def view(self) -> QName:
        return rows_view(self.archive)

    @property
    def function(self) -> QName:
        return read_function(self.archive)


def layout_problem(columns: tuple[Column, ...], segment: tuple[str, ...]) -> str | None:
    """Why a table cannot be packed with these segment columns, or None."""
    names = {c.name for c in columns}
    missing = [s for s in segment if s not in names]
    if missing:
        return (
            f"archive.segmentBy names {', '.join(missing)}, not a column of the table; "
            "list existing columns"
        )
    clash = sorted(names & set(RESERVED_COLUMNS))
    if clash:
        return f"column {clash[0]} clashes with the packed form's own columns; rename it"
    arrays = [c.name for c in columns if c.type.endswith("[]")]
    if arrays:
        return (
            f"column {arrays[0]} is an array, which a packed month cannot hold as one array "
            "per column; remove archive.compressAfterDays for this table"
        )
    return None
