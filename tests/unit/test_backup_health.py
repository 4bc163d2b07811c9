"""BackupsReady: current, pending, stale, missing and verify-failed schedules from one LIST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import BackupScheduleSpec
from lokifi_storage.domain.backup_catalog import (
    BackupEntry,
    ListedObject,
    catalog,
    dump_key,
    format_stamp,
    manifest_key,
    verify_key,
)
from lokifi_storage.domain.backup_health import assess_backups, schedule_interval

NOW = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)
DAILY = BackupScheduleSpec(name="daily", schedule="0 2 * * *", keep=7)
WEEKLY = BackupScheduleSpec(name="weekly", schedule="0 3 * * 0", keep=4)


def _run(schedule: str, at: datetime, *, verified: bool | None = None) -> list[ListedObject]:
    stamp = format_stamp(at)
    done = at + timedelta(minutes=10)
    objs = [
        ListedObject(dump_key("b/", "p", schedule, stamp, "zstd"), 4096, done),
        ListedObject(manifest_key("b/", "p", schedule, stamp), 100, done),
    ]
    if verified is not None:
        objs.append(
            ListedObject(
                verify_key("b/", "p", schedule, stamp, ok=verified), 1, done + timedelta(1)
            )
        )
    return objs


def _runs(*runs: list[ListedObject]) -> list[BackupEntry]:
    return catalog("b/", "p", [o for run in runs for o in run])


@pytest.mark.parametrize(
    ("schedule", "interval"),
    [
        ("0 2 * * *", timedelta(days=1)),
        ("0 3 * * 0", timedelta(days=7)),
        ("0 4 1 * *", timedelta(days=31)),
        ("0 9 * * 1-5", timedelta(days=3)),
        ("*/15 * * * *", timedelta(minutes=15)),
        ("@yearly", timedelta(days=366)),
    ],
)
def test_the_interval_is_the_longest_gap_between_runs(schedule: str, interval: timedelta) -> None:
    assert schedule_interval(schedule, NOW) == interval


def test_recent_backups_of_every_schedule_are_current() -> None:
    runs = _runs(_run("daily", NOW - timedelta(hours=20)), _run("weekly", NOW - timedelta(days=5)))
    health = assess_backups([DAILY, WEEKLY], runs, NOW)
    assert health.ok
    assert health.reason == Reason.BACKUPS_CURRENT
    daily = health.statuses[0]
    assert daily.schedule == "daily"
    assert daily.lastSizeBytes == 4096
    assert daily.count == 1
    assert daily.lastSuccessfulTime == "2026-02-19T16:10:00Z"


def test_a_backup_older_than_twice_the_interval_is_stale() -> None:
    runs = _runs(_run("daily", NOW - timedelta(days=2, hours=1)))
    health = assess_backups([DAILY], runs, NOW)
    assert not health.ok
    assert health.reason == Reason.BACKUP_STALE
    assert "daily" in health.message


def test_one_missed_run_is_tolerated() -> None:
    runs = _runs(_run("daily", NOW - timedelta(hours=40)))
    assert assess_backups([DAILY], runs, NOW).ok


def test_no_backup_is_pending_while_young_and_missing_after() -> None:
    young = assess_backups([DAILY], [], NOW, since=NOW - timedelta(hours=3))
    assert young.ok
    assert young.reason == Reason.BACKUP_PENDING
    old = assess_backups([DAILY], [], NOW, since=NOW - timedelta(days=3))
    assert not old.ok
    assert old.reason == Reason.BACKUP_MISSING


def test_a_failed_last_verify_makes_backups_not_ready_until_a_later_one_passes() -> None:
    failed = _runs(_run("daily", NOW - timedelta(hours=30), verified=False))
    health = assess_backups([DAILY], failed, NOW)
    assert not health.ok
    assert health.reason == Reason.VERIFY_FAILED
    assert health.statuses[0].lastVerifyResult == "Failed"
    assert health.statuses[0].lastVerifiedTime is None
    fixed = _runs(
        _run("daily", NOW - timedelta(hours=30), verified=False),
        _run("daily", NOW - timedelta(hours=6), verified=True),
    )
    health = assess_backups([DAILY], fixed, NOW)
    assert health.ok
    assert health.statuses[0].lastVerifyResult == "Passed"


def test_the_most_serious_problem_names_the_reason() -> None:
    runs = _runs(_run("weekly", NOW - timedelta(days=3), verified=False))
    health = assess_backups([DAILY, WEEKLY], runs, NOW)
    assert health.reason == Reason.VERIFY_FAILED
    assert "daily" in health.message
    assert "weekly" in health.message


def test_the_status_says_which_kind_of_verification_ran_and_that_glacier_is_not_verified() -> None:
    """Path 3: Restore, Archive, or NotVerified for a GLACIER schedule."""
    monthly = BackupScheduleSpec(
        name="monthly", schedule="0 4 1 * *", keep=12, storageClass="GLACIER"
    )
    stamp = format_stamp(NOW - timedelta(hours=20))
    done = NOW - timedelta(hours=19)
    marker = verify_key("b/", "p", "daily", stamp, ok=True, kind="archive")
    daily = [*_run("daily", NOW - timedelta(hours=20)), ListedObject(marker, 1, done)]
    weekly = _run("weekly", NOW - timedelta(days=2), verified=True)
    runs = _runs(daily, weekly, _run("monthly", NOW - timedelta(days=3)))
    health = assess_backups([DAILY, WEEKLY, monthly], runs, NOW, verify=True)
    kinds = {s.schedule: (s.lastVerifyResult, s.lastVerifyKind) for s in health.statuses}
    assert kinds == {
        "daily": ("Passed", "Archive"),
        "weekly": ("Passed", "Restore"),
        "monthly": (None, "NotVerified"),
    }
    assert health.ok
    assert "monthly: newest backup" in health.message
    assert "NOT verified: GLACIER" in health.message
