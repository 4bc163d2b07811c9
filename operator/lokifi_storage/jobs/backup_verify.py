"""`backup verify`: prove a backup restores, or at least reads, with the row counts of its manifest.

Verify restores into a scratch database on a server that is not the primary's (refused by
system_identifier), counts rows per table, compares them with the manifest, drops the scratch
database (always; leftovers of killed runs are dropped by the next run), and records the outcome
as a marker object next to the backup (`<stamp>.verify-ok.json` / `.verify-failed.json`) that
the operator reads. With no such server it reads the archive in full without a database
(jobs/backup_check.py), marked `.verify-ok.archive.json` / `.verify-failed.archive.json`.

It is apart from jobs/backup_restore.py because it owns what a restore does not: the scratch
databases and their clean-up, the refusal of the primary's server, and the verdict markers.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lokifi_storage.api.timestamps import rfc3339
from lokifi_storage.clients.backup_store import BackupStore
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.backup import (
    count_rows,
    create_database,
    drop_database,
    scratch_databases,
    server_identity,
)
from lokifi_storage.clients.postgres.connection import describe_target
from lokifi_storage.clients.postgres.tools import with_database
from lokifi_storage.domain.backup_catalog import VERIFY_KINDS, sidecar_key, verify_suffix
from lokifi_storage.domain.backup_manifest import ManifestError, compare_counts, tables
from lokifi_storage.jobs.backup_check import read_archive
from lokifi_storage.jobs.backup_restore import RestoreOptions, read_manifest, restore_backup
from lokifi_storage.jobs.outcome import BackupCorruptError, JobError, VerifyMismatchError
from lokifi_storage.jobs.progress import Reporter

__all__ = ["SCRATCH_PREFIX", "VerifyResult", "remove_leftover_scratch", "verify_backup"]


@dataclass
class VerifyResult:
    key: str
    ok: bool
    message: str
    mismatches: list[str]
    tables: int
    seconds: float
    kind: str = "restore"  # or "archive": checked without a database


SCRATCH_PREFIX = "lokifi_verify_"
SCRATCH_STALE = timedelta(hours=6)


def _scratch_name(now: datetime) -> str:
    return f"{SCRATCH_PREFIX}{now.strftime('%Y%m%d%H%M%S')}_{secrets.token_hex(4)}"


def _refuse_primary(target_url: str, primary_url: str | None) -> None:
    """Verification never writes to the primary: a target on its server is refused."""
    target = describe_target(target_url)
    if primary_url is None:
        raise JobError(
            f"cannot tell whether the verify target {target} is the primary's server: set "
            "LOKIFI_PRIMARY_URL (or --url-env) to the primary's URL"
        )
    target_id, _ = server_identity(target_url)
    primary_id, _ = server_identity(primary_url)
    if target_id == primary_id:
        raise JobError(
            f"the verify target {target} is the primary's server (or a replica of it: "
            f"system_identifier {target_id}); verification never writes to the primary. Point "
            "spec.backups.verifyTarget at another server, or leave it out to verify without a "
            "database"
        )


def remove_leftover_scratch(
    server_url: str, reporter: Reporter, *, now: datetime, stale: timedelta = SCRATCH_STALE
) -> list[str]:
    """Drop scratch databases left by verify runs that were killed (SIGKILL, node loss).

    Only names of this tool's pattern, older than `stale` by the time in their name, and only
    when nobody is connected (a plain DROP DATABASE refuses a database in use): a verify still
    restoring on another schedule keeps its own.
    """
    dropped = []
    for name in scratch_databases(server_url, SCRATCH_PREFIX):
        stamp = name[len(SCRATCH_PREFIX) :].split("_", 1)[0]
        try:
            made = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            continue
        if now - made < stale:
            continue
        try:
            drop_database(server_url, name, force=False)
        except ClientError as error:
            reporter.info(f"leftover scratch database {name} kept: {error}")
            continue
        dropped.append(name)
        reporter.info(f"dropped leftover scratch database {name}")
    return dropped


def verify_backup(
    store: BackupStore,
    key: str,
    target_url: str | None,
    options: RestoreOptions,
    reporter: Reporter,
    *,
    primary_url: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> VerifyResult:
    """Verify backup `key`: restored into a scratch database on `target_url`'s server (never
    the primary's), or, with no target, read in full without a database (jobs/backup_check.py).

    Writes the verify marker for a verdict on the backup itself (corrupt, or counts differ, or
    passed), with the kind in its name. A failure that says nothing about the backup (server
    unreachable, no permission to create a database, a target that is the primary) writes no
    marker and raises.
    """
    started = time.monotonic()
    manifest = read_manifest(store, key)
    try:
        expected = tables(manifest)
    except ManifestError as error:
        raise JobError(f"{key}: {error}") from error
    kind = "restore" if target_url is not None else "archive"
    if target_url is None:
        reporter.info(f"verify {key} without a database (no verify target)")
        try:
            reading = read_archive(store, key, manifest.get("sha256"), options.pg_bin)
        except JobError as error:  # BackupCorruptError included: both are verdicts
            _mark(store, key, ok=False, message=str(error), mismatches=[], clock=clock, kind=kind)
            raise
        actual = reading.counts
    else:
        _refuse_primary(target_url, primary_url)
        remove_leftover_scratch(target_url, reporter, now=clock())
        scratch = _scratch_name(clock())
        scratch_url = with_database(target_url, scratch)
        create_database(target_url, scratch)
        reporter.info(f"verify {key} in scratch database {scratch}")
        try:
            try:
                restore_backup(
                    store,
                    key,
                    scratch_url,
                    RestoreOptions(
                        jobs=options.jobs,
                        workdir=options.workdir,
                        no_owner=True,
                        pg_bin=options.pg_bin,
                    ),
                    reporter,
                    manifest=manifest,
                )
            except BackupCorruptError as error:
                _mark(store, key, ok=False, message=str(error), mismatches=[], clock=clock)
                raise
            except JobError as error:
                message = f"backup {key} does not restore: {error}"
                _mark(store, key, ok=False, message=message, mismatches=[], clock=clock)
                raise JobError(message, reason=error.reason) from error
            actual = {row.qualified: row.rows for row in count_rows(scratch_url)}
        finally:
            try:
                drop_database(target_url, scratch)
            except ClientError as error:
                reporter.info(f"WARNING scratch database {scratch} was not dropped: {error}")
    mismatches = compare_counts(expected, actual)
    seconds = time.monotonic() - started
    total = sum(expected.values())
    how = "restored" if kind == "restore" else "read in full without a database"
    if mismatches:
        message = (
            f"backup {key} {how} but {len(mismatches)} table(s) differ from the manifest: "
            + "; ".join(mismatches[:5])
        )
        _mark(store, key, ok=False, message=message, mismatches=mismatches, clock=clock, kind=kind)
        raise VerifyMismatchError(message)
    message = (
        f"backup {key} verified ({how}): {len(expected)} tables, {total} rows match the manifest"
    )
    _mark(store, key, ok=True, message=message, mismatches=[], clock=clock, kind=kind)
    reporter.info(f"{message} ({seconds:.1f}s)")
    return VerifyResult(key, True, message, [], len(expected), seconds, kind)


def _mark(
    store: BackupStore,
    key: str,
    *,
    ok: bool,
    message: str,
    mismatches: list[str],
    clock: Callable[[], datetime],
    kind: str = "restore",
) -> None:
    """Write this verify's marker and remove the others, so the name tells outcome and kind."""
    mine = sidecar_key(key, verify_suffix(ok, kind))
    others = [
        sidecar_key(key, verify_suffix(outcome, other))
        for outcome in (True, False)
        for other in VERIFY_KINDS
        if (outcome, other) != (ok, kind)
    ]
    store.put_json(
        mine,
        {
            "dumpKey": key,
            "ok": ok,
            "kind": kind,
            "checkedAt": rfc3339(clock()),
            "message": message,
            "mismatches": mismatches[:100],
        },
    )
    store.delete(others)
