"""Calendar arithmetic of time partitions: UTC-aligned ranges and the names they are given.

Every range is half-open, [start, end), with both ends timezone-aware in UTC. Alignment is to
the UTC calendar whatever time zone a timestamp arrives in, so a message written at 00:30 on
1 February in Berlin (23:30 UTC on 31 January) belongs to January's partition, as PostgreSQL
itself would route it for a `timestamptz` key. Naive timestamps (a `timestamp without time
zone` or `date` key) are taken to be UTC already.

Names are stable and sort in time order within one interval:

    day      ai_messages_p2026_01_15
    week     ai_messages_p2026w03        ISO week; ISO year (29 Dec 2025 is 2026w01)
    month    ai_messages_p2026_01
    quarter  ai_messages_p2026q1
    year     ai_messages_p2026

`parse_suffix` reads a name back into its range, which is how a detached partition left behind by
an interrupted run is recognised and its bounds checked.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "MAX_IDENTIFIER_LENGTH",
    "Interval",
    "TimeRange",
    "advance",
    "align",
    "bound_literal",
    "fits_identifier",
    "parse_bound_literal",
    "parse_suffix",
    "partition_suffix",
    "range_containing",
    "ranges_ahead",
    "to_utc",
]

Interval = Literal["day", "week", "month", "quarter", "year"]
INTERVALS: tuple[Interval, ...] = get_args(Interval)

MAX_IDENTIFIER_LENGTH = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated

UTC = dt.UTC


@dataclass(frozen=True, order=True)
class TimeRange:
    """A half-open range [start, end) of UTC instants."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeRange ends must be timezone-aware")
        if not self.start < self.end:
            raise ValueError(f"empty range [{self.start}, {self.end})")

    def contains(self, instant: dt.datetime) -> bool:
        return self.start <= to_utc(instant) < self.end

    def overlaps(self, other: TimeRange) -> bool:
        return self.start < other.end and other.start < self.end

    def wholly_before(self, instant: dt.datetime) -> bool:
        """True when every instant of the range is earlier than `instant`."""
        return self.end <= to_utc(instant)


def to_utc(instant: dt.datetime) -> dt.datetime:
    """The same instant in UTC; a naive value is read as UTC."""
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def align(instant: dt.datetime, interval: Interval) -> dt.datetime:
    """The start of the UTC calendar interval containing `instant`."""
    t = to_utc(instant)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - dt.timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    if interval == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if interval == "year":
        return day.replace(month=1, day=1)
    raise ValueError(f"unknown interval {interval!r}")


def advance(start: dt.datetime, interval: Interval, steps: int = 1) -> dt.datetime:
    """`start` moved by `steps` intervals (negative goes back). `start` must be aligned."""
    if interval == "day":
        return start + dt.timedelta(days=steps)
    if interval == "week":
        return start + dt.timedelta(weeks=steps)
    months = {"month": 1, "quarter": 3, "year": 12}[interval] * steps
    index = start.year * 12 + (start.month - 1) + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def range_containing(instant: dt.datetime, interval: Interval) -> TimeRange:
    start = align(instant, interval)
    return TimeRange(start, advance(start, interval))


def ranges_ahead(now: dt.datetime, interval: Interval, premake: int) -> list[TimeRange]:
    """The range holding `now` followed by `premake` future ranges, oldest first."""
    return list(_ranges_from(align(now, interval), interval, premake))


@functools.lru_cache(maxsize=256)
def _ranges_from(start: dt.datetime, interval: Interval, premake: int) -> tuple[TimeRange, ...]:
    # The same for every pass of one interval: a no-op pass plans the same months again.
    return tuple(
        TimeRange(advance(start, interval, i), advance(start, interval, i + 1))
        for i in range(premake + 1)
    )


def partition_suffix(start: dt.datetime, interval: Interval) -> str:
    """The name suffix of the partition starting at `start` (which must be aligned)."""
    t = to_utc(start)
    if interval == "day":
        return f"p{t.year:04d}_{t.month:02d}_{t.day:02d}"
    if interval == "week":
        iso_year, iso_week, _ = t.isocalendar()
        return f"p{iso_year:04d}w{iso_week:02d}"
    if interval == "month":
        return f"p{t.year:04d}_{t.month:02d}"
    if interval == "quarter":
        return f"p{t.year:04d}q{(t.month - 1) // 3 + 1}"
    return f"p{t.year:04d}"


_SUFFIXES: tuple[tuple[Interval, re.Pattern[str]], ...] = (
    ("day", re.compile(r"p(\d{4})_(\d{2})_(\d{2})")),
    ("week", re.compile(r"p(\d{4})w(\d{2})")),
    ("month", re.compile(r"p(\d{4})_(\d{2})")),
    ("quarter", re.compile(r"p(\d{4})q([1-4])")),
    ("year", re.compile(r"p(\d{4})")),
)


def parse_suffix(suffix: str) -> tuple[Interval, TimeRange] | None:
    """Read a suffix made by `partition_suffix` back; None when it is not one of ours."""
    for interval, pattern in _SUFFIXES:
        match = pattern.fullmatch(suffix)
        if match is None:
            continue
        numbers = [int(g) for g in match.groups()]
        try:
            if interval == "day":
                start = dt.datetime(numbers[0], numbers[1], numbers[2], tzinfo=UTC)
            elif interval == "week":
                day = dt.date.fromisocalendar(numbers[0], numbers[1], 1)
                start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
            elif interval == "month":
                start = dt.datetime(numbers[0], numbers[1], 1, tzinfo=UTC)
            elif interval == "quarter":
                start = dt.datetime(numbers[0], (numbers[1] - 1) * 3 + 1, 1, tzinfo=UTC)
            else:
                start = dt.datetime(numbers[0], 1, 1, tzinfo=UTC)
            end = advance(start, interval)
        except (ValueError, OverflowError):
            return None
        return interval, TimeRange(start, end)
    return None


def fits_identifier(name: str) -> bool:
    """Whether PostgreSQL keeps `name` whole (it truncates longer names without an error)."""
    return len(name.encode()) <= MAX_IDENTIFIER_LENGTH


# --- bound literals: how a range end is written for, and read back from, PostgreSQL -----------

KeyType = Literal["timestamptz", "timestamp", "date"]


def bound_literal(instant: dt.datetime, key_type: KeyType) -> str:
    """The text of a bound for a key of `key_type`, unambiguous whatever the session TimeZone."""
    t = to_utc(instant)
    if key_type == "date":
        return t.strftime("%Y-%m-%d")
    if key_type == "timestamp":
        return t.strftime("%Y-%m-%d %H:%M:%S")
    return t.strftime("%Y-%m-%d %H:%M:%S+00")


def parse_bound_literal(text: str) -> dt.datetime | None:
    """A bound as `pg_get_expr(relpartbound)` prints it in a UTC session; None for MINVALUE,
    MAXVALUE, infinity, BC dates and anything else that is not a plain instant."""
    value = text.strip()
    if value.startswith("'") and value.endswith("'"):
        value = value[1:-1]
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return to_utc(parsed)
