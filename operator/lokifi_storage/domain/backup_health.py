"""Are the backups current? Pure judgement over one LIST of the backup bucket.

A schedule is healthy when its newest backup is at most twice the schedule's interval old and
its most recent verify (if any) passed. The interval of a cron schedule is the longest gap
between two consecutive runs over a month of runs: `0 2 * * *` is a day, `0 3 * * 0` a week,
`0 4 1 * *` up to 31 days, `0 9 * * 1-5` three days (the weekend). Twice that tolerates one
missed run (a node drained at 02:00) without crying wolf, and flags the second.

A schedule without any backup is BackupPending (still healthy) while the resource is younger
than twice the interval, BackupMissing after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.cron import parse_cron
from lokifi_storage.api.spec import BackupScheduleSpec
from lokifi_storage.api.status import BackupStatus
from lokifi_storage.api.timestamps import rfc3339
from lokifi_storage.domain.backup_catalog import BackupEntry

__all__ = ["BackupsHealth", "assess_backups", "schedule_interval"]

_SPAN = timedelta(days=35)
_MAX_RUNS = 5000


def schedule_interval(schedule: str, around: datetime) -> timedelta:
    """The longest gap between consecutive runs of `schedule` over ~a month from `around`."""
    parsed = parse_cron(schedule)
    start = parsed.next_after(around - _SPAN)
    previous, longest, runs = start, timedelta(0), 0
    while runs < _MAX_RUNS and (previous - start < _SPAN or runs < 2):
        current = parsed.next_after(previous)
        longest = max(longest, current - previous)
        previous, runs = current, runs + 1
    return longest


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


@dataclass(frozen=True)
class BackupsHealth:
    """Status entries in spec order, and the BackupsReady verdict."""

    statuses: list[BackupStatus]
    ok: bool
    reason: str
    message: str


# Objects in these classes cannot be read without an S3 restore request: never verified.
UNREADABLE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
_KIND = {"restore": "Restore", "archive": "Archive"}


def _one(
    spec: BackupScheduleSpec,
    runs: Sequence[BackupEntry],
    now: datetime,
    since: datetime | None,
    verify: bool,
) -> tuple[BackupStatus, str | None, str]:
    """-> (status entry, problem reason or None, one-line summary)."""
    complete = sorted((r for r in runs if r.complete), key=lambda r: r.stamp)
    newest = complete[-1] if complete else None
    verified = sorted(
        (r for r in runs if r.verified is not None and r.verified_at is not None),
        key=lambda r: (r.verified_at, r.stamp),
    )
    passed = [r for r in verified if r.verified]
    last_verify = verified[-1] if verified else None
    status = BackupStatus(
        schedule=spec.name,
        lastSuccessfulTime=_iso(newest.finished_at if newest else None),
        lastSizeBytes=newest.dump.size if newest and newest.dump else None,
        lastVerifiedTime=_iso(passed[-1].verified_at if passed else None),
        lastKey=newest.dump.key if newest and newest.dump else None,
        count=len(complete),
        lastVerifyResult=None
        if last_verify is None
        else ("Passed" if last_verify.verified else "Failed"),
        lastVerifyKind=None
        if last_verify is None or last_verify.verify_kind is None
        else _KIND[last_verify.verify_kind],
    )
    unreadable = verify and spec.storageClass in UNREADABLE_CLASSES
    if unreadable:
        status.lastVerifyKind = "NotVerified"
    note = (
        f" (NOT verified: {spec.storageClass} objects cannot be read without an S3 restore request)"
        if unreadable
        else ""
    )
    limit = 2 * schedule_interval(spec.schedule, now)
    if last_verify is not None and last_verify.verified is False:
        return (
            status,
            Reason.VERIFY_FAILED,
            (f"{spec.name}: backup {last_verify.stamp} failed its restore verification"),
        )
    if newest is None or newest.finished_at is None:
        if since is not None and now - since <= limit:
            return status, None, f"{spec.name}: no backup yet, due within {_days(limit)}{note}"
        return status, Reason.BACKUP_MISSING, f"{spec.name}: no backup in the bucket"
    age = now - newest.finished_at
    if age > limit:
        return (
            status,
            Reason.BACKUP_STALE,
            (
                f"{spec.name}: newest backup is {_days(age)} old, more than twice the "
                f"schedule's interval ({_days(limit / 2)})"
            ),
        )
    return status, None, f"{spec.name}: newest backup {_iso(newest.finished_at)}{note}"


def _days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"


# When several schedules have problems, the condition's reason is the most serious one.
_SEVERITY = (Reason.VERIFY_FAILED, Reason.BACKUP_MISSING, Reason.BACKUP_STALE)


def assess_backups(
    schedules: Sequence[BackupScheduleSpec],
    runs: Sequence[BackupEntry],
    now: datetime,
    *,
    since: datetime | None = None,
    verify: bool = False,
) -> BackupsHealth:
    """Judge every schedule; `since` is when the resource was created (grace for a first run),
    `verify` is spec.backups.verifyRestore (schedules it cannot cover say so)."""
    statuses: list[BackupStatus] = []
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    for spec in schedules:
        mine = [r for r in runs if r.schedule == spec.name]
        status, problem, line = _one(spec, mine, now, since, verify)
        statuses.append(status)
        if problem:
            problems.append((problem, line))
        else:
            notes.append(line)
    if problems:
        reason = min((p for p, _ in problems), key=_SEVERITY.index)
        return BackupsHealth(statuses, False, reason, "; ".join(line for _, line in problems))
    if not schedules:
        return BackupsHealth(statuses, True, Reason.BACKUPS_CURRENT, "no backup schedules")
    pending = any(s.lastSuccessfulTime is None for s in statuses)
    reason = Reason.BACKUP_PENDING if pending else Reason.BACKUPS_CURRENT
    return BackupsHealth(statuses, True, reason, "; ".join(notes))
