"""Which backups of a schedule to delete after a new one succeeded, and what debris to clear.

Rules, in the order they protect data:

1. Only runs that follow this tool's key layout are ever considered (see backup_catalog).
2. The newest *good* backup is never pruned: good means complete (dump + manifest) and not
   failed by its latest verify. If the newest `keep` backups all failed verify, the newest good
   one beyond them is kept as well.
3. Of the complete backups, the newest `keep` are kept; older ones are pruned.
4. A dump without a manifest is never deleted: this tool always writes the manifest before the
   dump becomes visible, so such a dump was not made (or was altered) by it.
5. Sidecars whose dump is gone (a manifest left by a run killed before it completed its upload,
   or by an interrupted prune) are deleted once older than `grace`, so a run still uploading is
   never robbed of its manifest.
6. Multipart uploads older than `grace` under the schedule's prefix belong to runs that were
   killed without a chance to abort them (SIGKILL, node loss); they are aborted. Their age is
   read from the start stamp in the key, not from the server's `Initiated` (some S3-compatible
   servers report a constant there); uploads whose key is not of this layout are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from lokifi_storage.domain.backup_catalog import BackupEntry, parse_stamp, stamp_of

__all__ = ["DEFAULT_GRACE", "PendingUpload", "PrunePlan", "plan_prune"]

DEFAULT_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class PrunePlan:
    """Backups to delete (each a list of keys, dump first), orphan sidecars, stale uploads."""

    prune: list[BackupEntry]
    orphans: list[str]
    abort: list[PendingUpload]

    @property
    def empty(self) -> bool:
        return not (self.prune or self.orphans or self.abort)

    def delete_groups(self) -> list[list[str]]:
        """Key groups in the order they must be deleted: each backup's dump, then its sidecars."""
        groups: list[list[str]] = []
        for entry in self.prune:
            groups.append(entry.dump_keys())
            groups.append(entry.sidecar_keys())
        if self.orphans:
            groups.append(list(self.orphans))
        return [g for g in groups if g]


def _upload_age(upload: PendingUpload, now: datetime) -> timedelta:
    stamp = stamp_of(upload.key)
    if stamp is None:
        return timedelta(0)  # not ours: never old enough to abort
    return now - parse_stamp(stamp)


def _is_good(entry: BackupEntry) -> bool:
    return entry.complete and entry.verified is not False


def plan_prune(
    entries: Iterable[BackupEntry],
    keep: int,
    now: datetime,
    *,
    uploads: Sequence[PendingUpload] = (),
    grace: timedelta = DEFAULT_GRACE,
) -> PrunePlan:
    """Plan the retention of one schedule's runs (`entries` of one schedule, any order)."""
    keep = max(keep, 1)
    runs = sorted(entries, key=lambda e: e.stamp, reverse=True)
    complete = [e for e in runs if e.complete]
    kept = complete[:keep]
    newest_good = next((e for e in complete if _is_good(e)), None)
    if newest_good is not None and newest_good not in kept:
        kept.append(newest_good)
    prune = [e for e in complete if e not in kept]

    orphans: list[str] = []
    for entry in runs:
        if entry.dump is None and now - entry.started_at > grace:
            orphans.extend(entry.keys())
    abort = [u for u in uploads if _upload_age(u, now) > grace]
    return PrunePlan(prune=sorted(prune, key=lambda e: e.stamp), orphans=orphans, abort=abort)
