"""Retention per schedule: keep exactly `keep`, never the newest good backup, clear debris."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lokifi_storage.domain.backup_catalog import (
    BackupEntry,
    ListedObject,
    catalog,
    dump_key,
    format_stamp,
    manifest_key,
    verify_key,
)
from lokifi_storage.domain.backup_retention import PendingUpload, plan_prune

NOW = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)


def _run(
    day: int, *, complete: bool = True, verified: bool | None = None, dump: bool = True
) -> list[ListedObject]:
    at = datetime(2026, 2, day, 2, 0, tzinfo=UTC)
    stamp = format_stamp(at)
    objs = []
    if dump:
        objs.append(ListedObject(dump_key("b/", "p", "daily", stamp, "zstd"), 100, at))
    if complete:
        objs.append(ListedObject(manifest_key("b/", "p", "daily", stamp), 1, at))
    if verified is not None:
        key = verify_key("b/", "p", "daily", stamp, ok=verified)
        objs.append(ListedObject(key, 1, at + timedelta(hours=1)))
    return objs


def _entries(*runs: list[ListedObject]) -> list[BackupEntry]:
    return catalog("b/", "p", [o for run in runs for o in run])


def _days(entries: list[BackupEntry]) -> list[int]:
    return [e.started_at.day for e in entries]


def test_the_newest_keep_backups_stay_and_older_ones_are_pruned() -> None:
    entries = _entries(*(_run(day) for day in range(1, 11)))
    plan = plan_prune(entries, 3, NOW)
    assert _days(plan.prune) == [1, 2, 3, 4, 5, 6, 7]
    assert not plan.orphans


def test_nothing_is_pruned_while_there_are_at_most_keep_backups() -> None:
    plan = plan_prune(_entries(_run(1), _run(2)), 2, NOW)
    assert plan.empty


def test_the_newest_good_backup_survives_when_the_newest_keep_failed_verify() -> None:
    entries = _entries(
        _run(1, verified=True),
        _run(2, verified=True),
        _run(3, verified=False),
        _run(4, verified=False),
    )
    plan = plan_prune(entries, 2, NOW)
    assert _days(plan.prune) == [1]


def test_a_keep_of_zero_still_keeps_the_newest_backup() -> None:
    plan = plan_prune(_entries(_run(1), _run(2)), 0, NOW)
    assert _days(plan.prune) == [1]


def test_a_dump_without_manifest_is_never_deleted() -> None:
    entries = _entries(_run(1, complete=False), _run(2), _run(3))
    plan = plan_prune(entries, 1, NOW)
    assert _days(plan.prune) == [2]
    assert all(".dump" not in key for key in plan.orphans)


def test_an_orphan_manifest_is_removed_only_after_the_grace_period() -> None:
    entries = _entries(_run(19, dump=False), _run(20, dump=False))
    plan = plan_prune(entries, 3, NOW, grace=timedelta(hours=24))
    assert plan.orphans == [e.keys()[0] for e in entries if e.started_at.day == 19]


def test_stale_multipart_uploads_are_aborted_and_recent_ones_left_running() -> None:
    def upload(age: timedelta, upload_id: str) -> PendingUpload:
        stamp = format_stamp(NOW - age)
        # The server's Initiated is not trusted (moto reports a constant): the key's stamp is.
        return PendingUpload(dump_key("b/", "p", "daily", stamp, "zstd"), upload_id, NOW)

    old, fresh = upload(timedelta(days=2), "u1"), upload(timedelta(minutes=5), "u2")
    foreign = PendingUpload("b/p/daily/other-tool.bin", "u3", NOW - timedelta(days=9))
    plan = plan_prune([], 3, NOW, uploads=[old, fresh, foreign])
    assert plan.abort == [old]


def test_delete_groups_remove_each_dump_before_its_sidecars() -> None:
    plan = plan_prune(_entries(_run(1, verified=True), _run(2)), 1, NOW)
    groups = plan.delete_groups()
    assert groups[0] == [k for k in groups[0] if ".dump" in k]
    assert all(".dump" not in k for k in groups[1])
    assert len(groups) == 2


@given(
    st.lists(st.sampled_from([None, True, False]), min_size=0, max_size=15),
    st.integers(min_value=0, max_value=20),
)
def test_retention_keeps_keep_backups_plus_at_most_the_newest_good_one(
    verdicts: list[bool | None], keep: int
) -> None:
    entries = _entries(*(_run(i + 1, verified=v) for i, v in enumerate(verdicts)))
    plan = plan_prune(entries, keep, NOW)
    kept = [e for e in entries if e not in plan.prune]
    assert len(kept) in (min(len(entries), max(keep, 1)), max(keep, 1) + 1)
    good = [e for e in entries if e.verified is not False]
    if good:
        assert good[-1] in kept
    if entries:
        assert entries[-1] in kept
