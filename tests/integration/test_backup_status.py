"""The backups part reads the real bucket: status.backups and BackupsReady, with no writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from backupkit import quiet, seed, target

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import BackupsSpec, ObjectStorageSpec
from lokifi_storage.clients.errors import NotFound
from lokifi_storage.clients.s3 import RequestCounter, make_client
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.jobs.backup_create import CreateOptions, create_backup
from lokifi_storage.jobs.backup_restore import RestoreOptions
from lokifi_storage.jobs.backup_verify import verify_backup
from lokifi_storage.jobs.outcome import BackupCorruptError
from lokifi_storage.reconcile.backups import reconcile_backups
from stackfixtures import PgDatabase, StackEnv


def _spec(bucket: str) -> BackupsSpec:
    return BackupsSpec.model_validate(
        {
            "bucket": bucket,
            "schedules": [
                {"name": "daily", "schedule": "0 2 * * *", "keep": 7},
                {"name": "weekly", "schedule": "0 3 * * 0", "keep": 4},
            ],
        }
    )


def _storage(stack: StackEnv) -> ObjectStorageSpec:
    return ObjectStorageSpec.model_validate(
        {
            "endpoint": stack.s3_endpoint,
            "allowPlainHttp": True,
            "region": stack.aws_region,
            "credentialsSecretRef": {"name": "lokifi-s3"},
        }
    )


def _reconcile(stack: StackEnv, bucket: str, now: datetime, **kw: object):  # type: ignore[no-untyped-def]
    client = make_client(
        stack.s3_endpoint, stack.aws_region, stack.aws_access_key_id, stack.aws_secret_access_key
    )
    counter = RequestCounter().attach(client)
    report = reconcile_backups(
        _spec(bucket),
        _storage(stack),
        stack.aws_access_key_id,
        stack.aws_secret_access_key,
        folder="lks",
        now=now,
        client=client,
        **kw,  # type: ignore[arg-type]
    )
    return report, counter


def test_status_reports_each_schedules_newest_backup_and_writes_nothing(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database, messages=500)
    made = create_backup(
        pg_database,
        target(stack, s3_bucket),
        CreateOptions(schedule="daily", pg_bin=stack.pg_bin),
        quiet(),
    )
    create_backup(
        pg_database,
        target(stack, s3_bucket),
        CreateOptions(schedule="weekly", pg_bin=stack.pg_bin),
        quiet(),
    )

    report, counter = _reconcile(stack, s3_bucket, datetime.now(UTC))

    assert report.condition.status == "True"
    assert report.condition.reason == Reason.BACKUPS_CURRENT
    daily, weekly = status_json(report.status)["backups"]
    assert daily["schedule"] == "daily"
    assert daily["lastSizeBytes"] == made.size_bytes
    assert daily["lastKey"] == made.key
    assert daily["count"] == 1
    assert "lastVerifiedTime" not in daily
    assert weekly["count"] == 1
    assert counter.writes == 0


def test_a_backup_older_than_twice_its_interval_makes_backups_not_ready(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database, messages=100)
    for schedule in ("daily", "weekly"):
        create_backup(
            pg_database,
            target(stack, s3_bucket),
            CreateOptions(schedule=schedule, pg_bin=stack.pg_bin),
            quiet(),
        )
    report, _ = _reconcile(stack, s3_bucket, datetime.now(UTC) + timedelta(days=3))
    assert report.condition.status == "False"
    assert report.condition.reason == Reason.BACKUP_STALE
    assert "daily" in report.condition.message
    assert "weekly" not in report.condition.message


def test_a_schedule_without_backups_is_pending_then_missing(
    stack: StackEnv, s3_bucket: str
) -> None:
    now = datetime.now(UTC)
    young, _ = _reconcile(stack, s3_bucket, now, since=now - timedelta(hours=1))
    assert young.condition.status == "True"
    assert young.condition.reason == Reason.BACKUP_PENDING
    old, _ = _reconcile(stack, s3_bucket, now, since=now - timedelta(days=30))
    assert old.condition.status == "False"
    assert old.condition.reason == Reason.BACKUP_MISSING


def test_a_failed_verification_makes_backups_not_ready_until_one_passes(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database, messages=100)
    where = target(stack, s3_bucket)
    first = create_backup(
        pg_database, where, CreateOptions(schedule="daily", pg_bin=stack.pg_bin), quiet()
    )
    create_backup(
        pg_database, where, CreateOptions(schedule="weekly", pg_bin=stack.pg_bin), quiet()
    )
    s3 = stack.s3_client()
    body = bytearray(s3.get_object(Bucket=s3_bucket, Key=first.key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.put_object(Bucket=s3_bucket, Key=first.key, Body=bytes(body))
    options = RestoreOptions(pg_bin=stack.pg_bin)
    with pytest.raises(BackupCorruptError):
        verify_backup(where.store, first.key, None, options, quiet())

    failed, _ = _reconcile(stack, s3_bucket, datetime.now(UTC))
    assert failed.condition.status == "False"
    assert failed.condition.reason == Reason.VERIFY_FAILED
    assert status_json(failed.status)["backups"][0]["lastVerifyResult"] == "Failed"

    second = create_backup(
        pg_database, where, CreateOptions(schedule="daily", pg_bin=stack.pg_bin), quiet()
    )
    verify_backup(where.store, second.key, None, options, quiet())
    passed, _ = _reconcile(stack, s3_bucket, datetime.now(UTC))
    assert passed.condition.status == "True"
    assert status_json(passed.status)["backups"][0]["lastVerifyResult"] == "Passed"
    assert "lastVerifiedTime" in status_json(passed.status)["backups"][0]


def test_a_missing_bucket_is_reported_as_bucket_not_found(stack: StackEnv) -> None:
    with pytest.raises(NotFound) as raised:
        _reconcile(stack, "no-such-bucket-lokifi-test", datetime.now(UTC))
    assert raised.value.reason == Reason.BUCKET_NOT_FOUND


def test_a_bucket_objectstorage_will_create_is_pending_not_missing(stack: StackEnv) -> None:
    """The first pass runs the parts side by side: the backups part may list the bucket before
    the objectStorage part has created it (create: true). That is no backup yet, not a missing
    bucket; a bucket nobody creates is still BucketNotFound (the test above)."""
    bucket = "lokifi-test-created-later"
    storage = ObjectStorageSpec.model_validate(
        {
            **_storage(stack).model_dump(mode="json", exclude_none=True),
            "buckets": [{"name": bucket, "create": True}],
        }
    )
    report = reconcile_backups(
        _spec(bucket),
        storage,
        stack.aws_access_key_id,
        stack.aws_secret_access_key,
        folder="lks",
        now=datetime.now(UTC),
        since=datetime.now(UTC),
    )
    assert report.condition.reason == Reason.BACKUP_PENDING
    assert [s["schedule"] for s in status_json(report.status)["backups"]] == ["daily", "weekly"]
