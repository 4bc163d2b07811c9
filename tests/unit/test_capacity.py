"""Capacity arithmetic: used percent, growth from samples, projected full date, the alert."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.capacity import (
    MAX_SAMPLES,
    Sample,
    assess,
    growth_per_day,
    projected_full_date,
    record_sample,
    used_percent,
)

NOW = datetime(2026, 2, 5, 12, 0, tzinfo=UTC)
GIB = 1024**3


def _linear(start: int, per_day: float, hours: list[int]) -> list[Sample]:
    return [
        Sample(NOW - timedelta(hours=h), int(start + per_day * (-h) / 24)) for h in reversed(hours)
    ]


def test_used_percent_is_rounded_to_two_decimals() -> None:
    assert used_percent(1, 3) == 33.33
    assert used_percent(800, 1000) == 80.0
    with pytest.raises(ValueError, match="positive"):
        used_percent(1, 0)


def test_growth_of_samples_on_a_line_is_the_slope_of_that_line() -> None:
    samples = _linear(100 * GIB, 2 * GIB, [48, 36, 24, 12, 0])
    growth = growth_per_day(samples)
    assert growth == pytest.approx(2 * GIB, rel=1e-6)


def test_growth_needs_two_samples_half_an_hour_apart() -> None:
    assert growth_per_day([]) is None
    assert growth_per_day([Sample(NOW, 1)]) is None
    assert growth_per_day([Sample(NOW - timedelta(minutes=10), 1), Sample(NOW, 2)]) is None


def test_samples_outside_the_window_do_not_count() -> None:
    old = [Sample(NOW - timedelta(days=30), 0)]
    recent = _linear(10 * GIB, GIB, [24, 0])
    assert growth_per_day(old + recent) == pytest.approx(GIB, rel=1e-6)


def test_projected_full_date_is_capacity_left_over_growth() -> None:
    assert projected_full_date(NOW, 90, 100, 1.0) == date(2026, 2, 15)
    assert projected_full_date(NOW, 90, 100, 0.0) is None
    assert projected_full_date(NOW, 90, 100, None) is None
    assert projected_full_date(NOW, 100, 100, None) == NOW.date()
    assert projected_full_date(NOW, 0, 10**18, 1e-9) is None


def test_a_sample_is_recorded_only_after_the_spacing() -> None:
    first, changed = record_sample([], Sample(NOW, 1))
    assert changed
    assert first == [Sample(NOW, 1)]
    same, changed = record_sample(first, Sample(NOW + timedelta(minutes=59), 2))
    assert not changed
    assert same == first
    later, changed = record_sample(first, Sample(NOW + timedelta(hours=1), 3))
    assert changed
    assert [s.bytes for s in later] == [1, 3]


def test_history_is_bounded_and_keeps_the_newest_samples() -> None:
    history: list[Sample] = []
    for hour in range(MAX_SAMPLES + 10):
        history, _ = record_sample(history, Sample(NOW + timedelta(hours=hour), hour))
    assert len(history) == MAX_SAMPLES
    assert history[-1].bytes == MAX_SAMPLES + 9


def test_samples_from_the_future_are_dropped() -> None:
    history, changed = record_sample([Sample(NOW + timedelta(days=1), 5)], Sample(NOW, 1))
    assert changed
    assert history == [Sample(NOW, 1)]


def test_the_alert_fires_at_the_threshold_and_clears_below_it() -> None:
    at = assess(NOW, 80, 100, 80, [])
    assert at.exceeded
    assert at.reason == Reason.CAPACITY_THRESHOLD_EXCEEDED
    assert "80.0%" in at.message
    below = assess(NOW, 79, 100, 80, [])
    assert not below.exceeded
    assert below.reason == Reason.WITHIN_CAPACITY


@given(
    st.integers(min_value=1, max_value=2**50),
    st.floats(min_value=1.0, max_value=1e12, allow_nan=False),
    st.integers(min_value=0, max_value=2**50),
)
def test_a_projection_reaches_capacity_on_the_day_it_names(
    capacity: int, growth: float, used: int
) -> None:
    full = projected_full_date(NOW, used, capacity, growth)
    if used >= capacity:
        assert full == NOW.date()
        return
    if full is None:  # beyond year 9999: "not in sight"
        assert (capacity - used) / growth > (date.max - NOW.date()).days
        return
    days = (full - NOW.date()).days
    assert used + growth * (days + 1) >= capacity
    assert used + growth * (days - 1) < capacity


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=72 * 60), st.integers(0, 2**40)),
        min_size=2,
        max_size=40,
        unique_by=lambda t: t[0],
    ),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
)
def test_adding_a_linear_trend_raises_the_growth_by_that_trend(
    points: list[tuple[int, int]], per_day: float
) -> None:
    base = [Sample(NOW - timedelta(minutes=m), b) for m, b in points]
    if growth_per_day(base) is None:
        return
    tilted = [
        Sample(s.at, s.bytes + round(per_day * (s.at - NOW).total_seconds() / 86400)) for s in base
    ]
    before, after = growth_per_day(base), growth_per_day(tilted)
    assert before is not None
    assert after is not None
    assert after - before == pytest.approx(per_day, rel=1e-3, abs=1e3)
