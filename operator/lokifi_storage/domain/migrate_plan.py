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

from lokifi_storage.domain.copy_fields import Rejected
from lokifi_storage.domain.partitions.bounds import Interval, TimeRange, align, to_utc
from lokifi_storage.domain.partitions.catalog import ObservedTable
from lokifi_storage.domain.sqlite_time import timestamp_instant

__all__ = ["ArchiveRouter", "HourReader", "buckets_of", "stamp_text", "with_pending_buckets"]

_MS_FROM = 100_000_000_000
_CACHE_LIMIT = 200_000
_SIXTY = frozenset(f"{n:02d}".encode() for n in range(60))


class HourReader:
    """The UTC hour of a timestamp value, for counting rows per partition before the load.

    Called once per row, so values that share their hour are read once where that is exact:
    integers (Unix seconds or milliseconds) by their hour, whose whole range is in or out of
    range together, and naive `YYYY-MM-DD HH:MM:SS` text by its date and hour once its minutes
    and seconds are checked. Every other value goes through `timestamp_instant`, the converter
    the load uses. A value it refuses counts nowhere (its row is rejected when loaded), even in
    an hour a valid value already counted: the compiled scan (clients/sqlite_copy.hour_counts)
    counts the same."""

    def __init__(self) -> None:
        self.cache: dict[object, dt.datetime] = {}
        self.hours: dict[dt.datetime, int] = {}

    def __call__(self, value: object) -> None:
        key: object = None
        if type(value) is bytes and len(value) == 19 and value[16] == value[13] == 58:
            if value[14:16] not in _SIXTY or value[17:19] not in _SIXTY:
                return  # not a time (timestamp_instant refuses it too)
            key = value[:13]  # date and hour: validated with the first value of the hour
        elif type(value) is int:
            key = ("ms", value // 3_600_000) if abs(value) >= _MS_FROM else ("s", value // 3600)
        hour = self.cache.get(key) if key is not None else None
        if hour is None:
            try:
                instant = timestamp_instant(value)
            except Rejected:
                return
            hour = instant.replace(minute=0, second=0, microsecond=0)
            if key is not None:
                if len(self.cache) >= _CACHE_LIMIT:
                    self.cache.clear()
                self.cache[key] = hour
        self.hours[hour] = self.hours.get(hour, 0) + 1


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
