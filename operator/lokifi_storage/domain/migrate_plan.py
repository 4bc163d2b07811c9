"""Where migrated rows go: the partitions their time range needs, and which parent takes a row.

Partitions are planned by the partition planner itself. The data's time buckets are handed to it
as if the rows were already waiting in the DEFAULT partition, which is exactly the case the
planner already handles: it creates one partition per bucket (moving nothing, since DEFAULT is
empty), and on the next pass archives those past `archive.afterDays` while they are still
empty. Rows then go straight to where they stay: old months into the archive table, recent ones
into the table, and the reconciler finds nothing to move later.

Partitions past `retention.dropAfterDays` are kept (the planner would drop them only with
`dropWithoutExport`): the rows are loaded, and the next reconcile exports or drops them as
the resource says, so the migration itself never discards data.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
from collections.abc import Iterable

from lokifi_storage.domain.partition_bounds import Interval, TimeRange, align, to_utc
from lokifi_storage.domain.partition_catalog import ObservedTable

__all__ = ["ArchiveRouter", "buckets_of", "stamp_text", "with_pending_buckets"]


def buckets_of(hours: dict[dt.datetime, int], interval: Interval) -> dict[dt.datetime, int]:
    """Rows per partition start, from rows per UTC hour."""
    out: dict[dt.datetime, int] = {}
    for hour, rows in hours.items():
        start = align(hour, interval)
        out[start] = out.get(start, 0) + rows
    return dict(sorted(out.items()))


def with_pending_buckets(observed: ObservedTable, buckets: dict[dt.datetime, int]) -> ObservedTable:
    """`observed` as if the data's rows sat in its DEFAULT partition, so the planner makes a
    partition for each of their ranges."""
    merged = dict(observed.default_buckets)
    for start, rows in buckets.items():
        merged[start] = merged.get(start, 0) + rows
    return dataclasses.replace(observed, default_buckets=tuple(sorted(merged.items())))


def stamp_text(instant: dt.datetime) -> str:
    """An instant as the converters write a timestamptz field (its first 26 characters)."""
    t = to_utc(instant)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}"
    )


class ArchiveRouter:
    """Tells whether a converted partition-key field falls into an archived range.

    Fields are compared as text: the converters write `YYYY-MM-DD HH:MM:SS.ffffff`, which sorts
    as time does, so routing a row costs one bisect and no parsing."""

    def __init__(self, archived: Iterable[TimeRange], width: int = 26) -> None:
        ranges = sorted(archived)
        self.width = width
        self.starts = [stamp_text(r.start)[:width].encode() for r in ranges]
        self.ends = [stamp_text(r.end)[:width].encode() for r in ranges]

    def __bool__(self) -> bool:
        return bool(self.starts)

    def archived(self, field: bytes) -> bool:
        key = field[: self.width]
        i = bisect.bisect_right(self.starts, key) - 1
        return i >= 0 and key < self.ends[i]
