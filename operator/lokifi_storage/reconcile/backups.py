"""The backups part (`spec.backups`): one LIST of the bucket -> status.backups + BackupsReady.

The operator does not take backups itself (the CronJobs do, with `lokifi-storage backup
create`); it reports what the bucket shows: per schedule the newest complete backup's time and
size, how many are kept, and the last restore verification. BackupsReady is False when a
schedule's newest backup is older than twice its interval, when a schedule never produced one
(after that long since the resource was created), or when its last verification failed.

Read-only: a LIST per reconcile, no PUT, whatever the outcome.
"""

from __future__ import annotations

from datetime import datetime

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import BackupsSpec, ObjectStorageSpec
from lokifi_storage.api.status import Condition
from lokifi_storage.clients.backup_store import BackupStore
from lokifi_storage.clients.errors import NotFound
from lokifi_storage.clients.s3 import S3Client, make_reconcile_client
from lokifi_storage.domain.backup_catalog import catalog, name_prefix
from lokifi_storage.domain.backup_health import assess_backups
from lokifi_storage.reconcile.report import PartReport

__all__ = ["reconcile_backups"]


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
        condition=Condition(
            type=types.BACKUPS_READY,
            status="True" if health.ok else "False",
            reason=health.reason,
            message=health.message,
        ),
        status={"backups": [s.model_dump(mode="json", exclude_none=True) for s in health.statuses]},
    )
