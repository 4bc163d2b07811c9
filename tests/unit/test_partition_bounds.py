"""Calendar math of time partitions: UTC alignment, month/year boundaries, time zones, names."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lokifi_storage.domain.partitions.bounds import (
    INTERVALS,
    Interval,
    TimeRange,
    advance,
    align,
    bound_literal,
    fits_identifier,
    parse_bound_literal,
    parse_suffix,
    partition_suffix,
    range_containing,
    ranges_ahead,
)
from lokifi_storage.domain.partitions.catalog import parse_partition_bound

UTC = dt.UTC

instants = st.datetimes(
    min_value=dt.datetime(1971, 1, 1),
    max_value=dt.datetime(2998, 12, 31),
    timezones=st.sampled_from(
        [
            UTC,
            ZoneInfo("Europe/Berlin"),
            ZoneInfo("America/New_York"),
            ZoneInfo("Asia/Kolkata"),
            ZoneInfo("Pacific/Kiritimati"),  # UTC+14
            ZoneInfo("Pacific/Pago_Pago"),  # UTC-11
            dt.timezone(dt.timedelta(hours=-12)),
        ]
    ),
)
intervals = st.sampled_from(INTERVALS)


@pytest.mark.parametrize(
    ("interval", "instant", "start", "end"),
    [
        ("month", "2026-01-31T23:59:59.999999+00:00", "2026-01-01", "2026-02-01"),
        ("month", "2026-02-01T00:00:00+00:00", "2026-02-01", "2026-03-01"),
        ("month", "2025-12-15T12:00:00+00:00", "2025-12-01", "2026-01-01"),
        ("month", "2024-02-29T08:00:00+00:00", "2024-02-01", "2024-03-01"),
        ("quarter", "2026-03-31T23:00:00+00:00", "2026-01-01", "2026-04-01"),
        ("quarter", "2026-11-02T00:00:00+00:00", "2026-10-01", "2027-01-01"),
        ("year", "2026-12-31T23:59:59+00:00", "2026-01-01", "2027-01-01"),
        ("week", "2026-01-04T23:00:00+00:00", "2025-12-29", "2026-01-05"),  # Sunday
        ("week", "2026-01-05T00:00:00+00:00", "2026-01-05", "2026-01-12"),  # Monday
        ("day", "2026-03-29T01:30:00+00:00", "2026-03-29", "2026-03-30"),
    ],
)
def test_instants_fall_in_the_utc_calendar_interval_that_contains_them(
    interval: Interval, instant: str, start: str, end: str
) -> None:
    r = range_containing(dt.datetime.fromisoformat(instant), interval)
    assert r.start == dt.datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert r.end == dt.datetime.fromisoformat(end).replace(tzinfo=UTC)


def test_a_berlin_midnight_on_the_first_belongs_to_the_previous_utc_month() -> None:
    berlin = dt.datetime(2026, 2, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert range_containing(berlin, "month").start == dt.datetime(2026, 1, 1, tzinfo=UTC)


def test_a_new_york_evening_on_the_last_day_belongs_to_the_next_utc_month() -> None:
    new_york = dt.datetime(2025, 12, 31, 20, 0, tzinfo=ZoneInfo("America/New_York"))
    assert range_containing(new_york, "month").start == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert range_containing(new_york, "year").start == dt.datetime(2026, 1, 1, tzinfo=UTC)


def test_naive_timestamps_are_read_as_utc() -> None:
    assert align(dt.datetime(2026, 5, 31, 23, 59), "month") == dt.datetime(2026, 5, 1, tzinfo=UTC)


def test_advancing_a_month_crosses_the_year_in_both_directions() -> None:
    december = dt.datetime(2025, 12, 1, tzinfo=UTC)
    assert advance(december, "month") == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert advance(dt.datetime(2026, 1, 1, tzinfo=UTC), "month", -1) == december
    assert advance(december, "quarter", 1) == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert advance(december, "month", 25) == dt.datetime(2028, 1, 1, tzinfo=UTC)


def test_ranges_ahead_start_with_the_current_interval_and_add_premake_more() -> None:
    now = dt.datetime(2026, 11, 20, tzinfo=UTC)
    ranges = ranges_ahead(now, "month", 3)
    assert [r.start.date().isoformat() for r in ranges] == [
        "2026-11-01",
        "2026-12-01",
        "2027-01-01",
        "2027-02-01",
    ]


@pytest.mark.parametrize(
    ("interval", "start", "suffix"),
    [
        ("day", "2026-01-15", "p2026_01_15"),
        ("week", "2026-01-12", "p2026w03"),
        ("week", "2025-12-29", "p2026w01"),  # ISO year 2026 starts on 29 December 2025
        ("week", "2026-12-28", "p2026w53"),
        ("month", "2026-01-01", "p2026_01"),
        ("quarter", "2026-07-01", "p2026q3"),
        ("year", "2026-01-01", "p2026"),
    ],
)
def test_partition_names_are_stable_and_readable(
    interval: Interval, start: str, suffix: str
) -> None:
    instant = dt.datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert partition_suffix(instant, interval) == suffix
    parsed = parse_suffix(suffix)
    assert parsed is not None
    assert parsed == (interval, range_containing(instant, interval))


@pytest.mark.parametrize(
    "text", ["p2026_13", "p2026w54", "p2026q5", "pxxxx", "default", "p2026_02_30"]
)
def test_suffixes_that_are_not_ours_do_not_parse(text: str) -> None:
    assert parse_suffix(text) is None


@given(instants, intervals)
def test_every_instant_lies_in_its_range_and_the_range_is_aligned(
    instant: dt.datetime, interval: Interval
) -> None:
    r = range_containing(instant, interval)
    assert r.contains(instant)
    assert align(r.start, interval) == r.start
    assert r.start.tzinfo == UTC
    assert r.start.hour == r.start.minute == r.start.second == r.start.microsecond == 0
    assert advance(r.start, interval) == r.end


@given(instants, intervals, st.integers(min_value=0, max_value=40))
def test_ranges_ahead_are_adjacent_and_cover_now(
    instant: dt.datetime, interval: Interval, premake: int
) -> None:
    ranges = ranges_ahead(instant, interval, premake)
    assert len(ranges) == premake + 1
    assert ranges[0].contains(instant)
    for earlier, later in itertools.pairwise(ranges):
        assert earlier.end == later.start


@given(instants, intervals)
def test_names_read_back_to_the_range_they_were_made_from(
    instant: dt.datetime, interval: Interval
) -> None:
    r = range_containing(instant, interval)
    assert parse_suffix(partition_suffix(r.start, interval)) == (interval, r)


@given(instants, instants, intervals)
def test_names_sort_like_the_ranges_they_name(
    a: dt.datetime, b: dt.datetime, interval: Interval
) -> None:
    ra, rb = range_containing(a, interval), range_containing(b, interval)
    na, nb = partition_suffix(ra.start, interval), partition_suffix(rb.start, interval)
    assert (ra.start < rb.start) == (na < nb)


def test_a_range_must_not_be_empty_or_naive() -> None:
    jan = dt.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="empty"):
        TimeRange(jan, jan)
    with pytest.raises(ValueError, match="aware"):
        TimeRange(dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1))


def test_bound_literals_match_the_key_type_and_read_back() -> None:
    instant = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert bound_literal(instant, "timestamptz") == "2026-01-01 00:00:00+00"
    assert bound_literal(instant, "timestamp") == "2026-01-01 00:00:00"
    assert bound_literal(instant, "date") == "2026-01-01"
    for key_type in ("timestamptz", "timestamp", "date"):
        assert parse_bound_literal(bound_literal(instant, key_type)) == instant  # type: ignore[arg-type]
    assert parse_bound_literal("MINVALUE") is None
    assert parse_bound_literal("'infinity'") is None


def test_partition_bounds_printed_by_postgres_are_read() -> None:
    bound = parse_partition_bound(
        "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')"
    )
    assert bound.time_range() == (
        dt.datetime(2026, 1, 1, tzinfo=UTC),
        dt.datetime(2026, 2, 1, tzinfo=UTC),
    )
    assert parse_partition_bound("FOR VALUES FROM (0) TO (1000000)").int_range() == (0, 1_000_000)
    assert parse_partition_bound("DEFAULT").is_default
    assert parse_partition_bound("FOR VALUES FROM (MINVALUE) TO ('2026-01-01')").unsupported
    assert parse_partition_bound("FOR VALUES IN (1, 2)").unsupported


def test_identifiers_longer_than_63_bytes_do_not_fit() -> None:
    assert fits_identifier("a" * 63)
    assert not fits_identifier("a" * 64)
    assert not fits_identifier("é" * 32)
