"""The packed form of an archived month: its layout and names. Pure.

PostgreSQL compresses a value only when its row passes about 2 kB, and most chat messages are
shorter, so rewriting a month row by row saves nothing. Packing groups a month's rows by the
spec's `archive.segmentBy` columns (user and thread by default) and stores each group as one
row: the segment columns as they are, and every other column as an array in time order. A
group's arrays are large enough for TOAST to compress, and one thread's history is one row.

Layout of `<archive schema>.<table>_packed` (PARTITION BY RANGE (lokifi_first), one partition
per packed month, named like the month it replaced):

    <segment columns>          the group's values, original types
    lokifi_rows  integer       rows in the group
    lokifi_first, lokifi_last  first and last value of the partition key in the group
    <every other column>       an array per column, in partition-key order

A group holds at most GROUP_ROWS rows; a longer thread spans several stored rows. The view
`<table>_rows` and the function `<table>_group(<segment columns>)` read it back as the
original rows (clients/partition_pack_sql.py writes their SQL).
"""

from __future__ import annotations

from dataclasses import dataclass

from lokifi_storage.domain.partition_catalog import Column, QName

__all__ = [
    "GROUP_ROWS",
    "META_COLUMNS",
    "PackLayout",
    "layout_problem",
    "packed_parent",
    "read_function",
    "rows_view",
    "stored_segment",
]

GROUP_ROWS = 1000  # rows per stored group: bounds what one thread lookup decompresses
META_COLUMNS = ("lokifi_rows", "lokifi_first", "lokifi_last")
RESERVED_COLUMNS = (*META_COLUMNS, "lokifi_n")  # lokifi_n numbers rows while packing


def packed_parent(archive: QName) -> QName:
    return QName(archive.schema, f"{archive.name}_packed")


def rows_view(archive: QName) -> QName:
    return QName(archive.schema, f"{archive.name}_rows")


def read_function(archive: QName) -> QName:
    return QName(archive.schema, f"{archive.name}_group")


@dataclass(frozen=True)
class PackLayout:
    """How one table's months are packed: its columns (in order, with their SQL types), the
    segment columns, the partition key, and the TOAST compression of the arrays."""

    archive: QName
    columns: tuple[Column, ...]
    segment: tuple[str, ...]
    time_column: str
    compression: str = "pglz"

    @property
    def parent(self) -> QName:
        return packed_parent(self.archive)

    @property
    def view(self) -> QName:
        return rows_view(self.archive)

    @property
    def function(self) -> QName:
        return read_function(self.archive)

    def segment_columns(self) -> tuple[Column, ...]:
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name[name] for name in self.segment)

    def array_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.name not in self.segment)


def stored_segment(columns: tuple[Column, ...]) -> tuple[str, ...]:
    """The segment columns of an existing packed table: its columns that are not arrays."""
    return tuple(
        c.name for c in columns if not c.type.endswith("[]") and c.name not in META_COLUMNS
    )


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
