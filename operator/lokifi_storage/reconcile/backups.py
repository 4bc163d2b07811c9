"""The backups part (`spec.backups`): one LIST of the bucket -> status.backups + BackupsReady.

The operator does not take backups itself (the CronJobs do, with `lokifi-storage backup
create`); it reports what the bucket shows: per schedule the newest complete backup's time and
size, how many are kept, and the last restore verification. BackupsReady is False when a
schedule's newest backup is older than twice its interval, when a schedule never produced one
(after that long since the resource was created), or when its last verification failed.

Read-only: a LIST per reconcile, no PUT, whatever the outcome.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import BackupsSpec, LokifiStorageSpec, ObjectStorageSpec
from lokifi_storage.api.status import LokifiStorageStatus, judged
from lokifi_storage.clients.backup_store import BackupStore
from lokifi_storage.clients.errors import NotFound
from lokifi_storage.clients.postgres.backup import server_identity
from lokifi_storage.clients.s3 import S3Client, make_reconcile_client
from lokifi_storage.domain.backup_catalog import backup_folder, catalog, name_prefix, source_id
from lokifi_storage.domain.backup_health import assess_backups
from lokifi_storage.reconcile.parts import Part, PartContext, s3_credentials
from lokifi_storage.reconcile.report import PartReport

__all__ = ["PART", "BackupsPart", "reconcile_backups"]


def _created_here(spec: BackupsSpec, object_storage: ObjectStorageSpec | None) -> bool:
    buckets = object_storage.buckets if object_storage else []
    return any(b.name == spec.bucket and b.create for b in buckets)


def reconcile_backups(
    spec: BackupsSpec,
    object_storage: ObjectStorageSpec | None,
    access_key: str | None,
    secret_key: str | None,
    *,
    folder: str,
    now: datetime,
    since: datetime | None = None,
    client: S3Client | None = None,
) -> PartReport:
    """`folder` is this resource's own (backup_catalog.backup_folder: namespace, name and the
    primary's identity, as the CronJobs compute it), `since` its creation time (a new resource
    gets twice the schedule's interval before BackupMissing). Nothing outside the folder is
    listed, so another resource's backups are never reported as this one's."""
    s3 = client or make_reconcile_client(
        object_storage.endpoint if object_storage else None,
        object_storage.region if object_storage else None,
        access_key,
        secret_key,
    )
    store = BackupStore(s3, spec.bucket)
    try:
        objects = store.list_objects(name_prefix(spec.prefix, folder))
    except NotFound as missing:
        if missing.reason != Reason.BUCKET_NOT_FOUND or not _created_here(spec, object_storage):
            raise
        # objectStorage creates this bucket (create: true), in this same pass or a later one:
        # it holds no backups yet, which is BackupPending, not a missing bucket to warn about.
        # Should creating it fail, ObjectStorageReady says why.
        objects = []
    runs = catalog(spec.prefix, folder, objects)
    health = assess_backups(spec.schedules, runs, now, since=since, verify=spec.verifyRestore)
    return PartReport(
        condition=judged(types.BACKUPS_READY, health.ok, health.reason, health.message),
        status=LokifiStorageStatus(backups=list(health.statuses)),
    )


def _backup_source(ctx: PartContext) -> str:
    """The primary's `<system_identifier>-<database>`, read once per primary URL: the folder
    the backup CronJobs write to, and the only one this resource reports."""
    postgres = ctx.spec.postgres
    assert postgres is not None
    url = ctx.secrets.value(postgres.primary.secretRef)
    fingerprint = hashlib.sha256(url.encode()).hexdigest()
    cached = ctx.memory.get("backupSource")
    if cached is not None and cached[0] == fingerprint:
        return str(cached[1])
    source = source_id(*server_identity(url))
    ctx.memory["backupSource"] = (fingerprint, source)
    return source


class BackupsPart:
    """spec.backups: BackupsReady and status.backups, from what the bucket holds."""

    name = "backups"
    conditions = (types.BACKUPS_READY,)
    status_keys = ("backups",)

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return spec.backups is not None

    def run(self, ctx: PartContext) -> list[PartReport]:
        backups = ctx.spec.backups
        assert backups is not None
        folder = backup_folder(ctx.namespace, ctx.name, _backup_source(ctx))
        access_key, secret_key = s3_credentials(ctx)
        report = reconcile_backups(
            backups,
            ctx.spec.objectStorage,
            access_key,
            secret_key,
            folder=folder,
            now=ctx.now,
            since=ctx.created,
        )
        return [report]

    def cleanup(self, ctx: PartContext) -> list[str]:
        return []  # backups outlive the resource: they are what restores it

    def release(self, ctx: PartContext) -> list[str]:
        return []  # it claims nothing


PART: Part = BackupsPart()
