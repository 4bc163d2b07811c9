"""CronJob schedules: what Kubernetes accepts is accepted, the rest is refused saying why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lokifi_storage.api.cron import CronError, cron_problem, parse_cron


@pytest.mark.parametrize(
    "text",
    [
        "0 2 * * *",
        "0 3 * * 0",
        "0 4 1 * *",
        "*/15 * * * *",
        "0 5 * * SUN",
        "0 0 1 JAN *",
        "0 9-17 * * MON-FRI",
        "0,30 * * * *",
        "@daily",
        "@weekly",
        "@monthly",
        "@hourly",
    ],
)
def test_schedules_kubernetes_accepts_are_valid(text: str) -> None:
    assert cron_problem(text) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0 2 * *", "5 fields"),
        ("61 * * * *", "out of range 0-59"),
        ("0 2 30 2 *", "never runs"),
        ("@every 5m", "@every"),
        ("@sometimes", "unknown macro"),
        ("CRON_TZ=Europe/Paris 0 2 * * *", "UTC"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(CronError, match=why):
        parse_cron(text)


def test_daily_schedule_fires_next_at_its_hour() -> None:
    moment = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert parse_cron("0 2 * * *").next_after(moment) == datetime(2027, 1, 1, 2, 0, tzinfo=UTC)


def test_monthly_schedule_crosses_the_year_boundary() -> None:
    moment = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    assert parse_cron("0 4 1 * *").next_after(moment) == datetime(2027, 1, 1, 4, 0, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_next_run_is_after_the_moment_matches_and_is_the_first(moment: datetime) -> None:
    moment = moment.replace(tzinfo=UTC)
    schedule = parse_cron("*/20 3 * * MON")
    fires = schedule.next_after(moment)
    assert fires > moment
    assert schedule.matches(fires)
    assert fires - moment <= timedelta(days=7, minutes=1)
