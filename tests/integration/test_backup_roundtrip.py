"""Backups against the real PostgreSQL and S3 server: what goes in comes back out, exactly."""

from __future__ import annotations

import psycopg
import pytest
from backupkit import (
    all_keys,
    fingerprints,
    fresh_database,
    open_uploads,
    quiet,
    seed,
    target,
)

from lokifi_storage.domain.backup_manifest import tables
from lokifi_storage.jobs.backup_create import CreateOptions, create_backup
from lokifi_storage.jobs.backup_restore import (
    RestoreOptions,
    find_backup,
    list_backups,
    restore_backup,
)
from stackfixtures import PgDatabase, StackEnv


@pytest.mark.parametrize("compression", ["zstd", "gzip", "lz4", "none"])
def test_a_backup_restores_into_a_fresh_database_with_identical_rows(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, compression: str
) -> None:
    seed(pg_database)
    before = fingerprints(pg_database)
    where = target(stack, s3_bucket)
    options = CreateOptions(schedule="daily", compression=compression, pg_bin=stack.pg_bin)

    result = create_backup(pg_database, where, options, quiet())

    suffix = {"zstd": ".dump.zst", "gzip": ".dump.gz", "lz4": ".dump.lz4", "none": ".dump"}
    assert result.key.startswith("backups/lks/daily/")
    assert result.key.endswith(suffix[compression])
    with fresh_database(stack, f"restored_{compression}") as restored:
        restore_backup(
            where.store, result.key, restored, RestoreOptions(pg_bin=stack.pg_bin), quiet()
        )
        assert fingerprints(restored) == before
    assert before["public.ai_messages_default"][0] == 25


def test_the_manifest_records_checksum_versions_times_and_rows_per_partition(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database)
    where = target(stack, s3_bucket)
    result = create_backup(
        pg_database, where, CreateOptions(schedule="weekly", pg_bin=stack.pg_bin), quiet()
    )
    manifest = where.store.get_json(result.manifest_key)
    head = stack.s3_client().head_object(Bucket=s3_bucket, Key=result.key)

    assert manifest["sizeBytes"] == head["ContentLength"] == result.size_bytes
    assert len(manifest["sha256"]) == 64
    assert manifest["serverVersion"].startswith("15")
    assert manifest["startedAt"] <= manifest["finishedAt"]
    assert head["Metadata"]["lokifi-schedule"] == "weekly"
    assert head["Metadata"]["lokifi-server-version"] == manifest["serverVersion"]
    counts = tables(manifest)
    assert counts["public.ai_messages_2025_01"] + counts["public.ai_messages_2025_02"] == 5000
    assert counts["public.ai_messages_default"] == 25
    assert counts["archive.Odd Name"] == 3
    assert "public.ai_messages" not in counts  # the partitioned parent holds no rows itself


def test_row_counts_describe_the_snapshot_even_while_rows_are_written(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database, messages=60_000)
    where = target(stack, s3_bucket)
    writer = psycopg.connect(pg_database, autocommit=True)
    try:
        # Keep a writer busy during the dump: rows it adds after the snapshot must be in
        # neither the dump nor the manifest.
        writer.execute(
            "INSERT INTO ai_threads SELECT g, 1, 'late', false, NULL"
            " FROM generate_series(100000, 100050) g"
        )
        result = create_backup(
            pg_database, where, CreateOptions(schedule="daily", pg_bin=stack.pg_bin), quiet()
        )
        writer.execute(
            "INSERT INTO ai_threads SELECT g, 1, 'after', false, NULL"
            " FROM generate_series(200000, 200050) g"
        )
    finally:
        writer.close()
    manifest = where.store.get_json(result.manifest_key)
    with fresh_database(stack, "restored_snapshot") as restored:
        restore_backup(
            where.store, result.key, restored, RestoreOptions(pg_bin=stack.pg_bin), quiet()
        )
        restored_counts = {k: rows for k, (rows, _) in fingerprints(restored).items()}
    assert restored_counts == tables(manifest)
    assert tables(manifest)["public.ai_threads"] == 251


def test_a_parallel_restore_gives_the_same_rows_as_a_streamed_one(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, tmp_path: object
) -> None:
    seed(pg_database)
    before = fingerprints(pg_database)
    where = target(stack, s3_bucket)
    result = create_backup(
        pg_database, where, CreateOptions(schedule="daily", pg_bin=stack.pg_bin), quiet()
    )
    with fresh_database(stack, "restored_parallel") as restored:
        options = RestoreOptions(jobs=3, workdir=str(tmp_path), pg_bin=stack.pg_bin)
        restore_backup(where.store, result.key, restored, options, quiet())
        assert fingerprints(restored) == before


def test_a_multi_part_upload_reassembles_byte_for_byte(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database, messages=80_000)
    where = target(stack, s3_bucket)
    options = CreateOptions(
        schedule="daily", compression="none", part_size=5 * 1024 * 1024, pg_bin=stack.pg_bin
    )
    result = create_backup(pg_database, where, options, quiet())
    assert result.parts >= 3
    body = stack.s3_client().get_object(Bucket=s3_bucket, Key=result.key)["Body"].read()
    import hashlib

    assert hashlib.sha256(body).hexdigest() == result.sha256
    assert body[:5] == b"PGDMP"
    with fresh_database(stack, "restored_parts") as restored:
        restore_backup(
            where.store, result.key, restored, RestoreOptions(pg_bin=stack.pg_bin), quiet()
        )
        assert fingerprints(restored) == fingerprints(pg_database)


def test_retention_keeps_exactly_keep_backups_the_newest_ones(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database, messages=100)
    where = target(stack, s3_bucket)
    made = []
    for _ in range(4):
        options = CreateOptions(schedule="daily", keep=2, pg_bin=stack.pg_bin)
        made.append(create_backup(pg_database, where, options, quiet()).key)
    weekly = create_backup(
        pg_database, where, CreateOptions(schedule="weekly", keep=1, pg_bin=stack.pg_bin), quiet()
    )

    runs = list_backups(where.store, where.prefix, where.name)
    daily = [r.dump.key for r in runs if r.schedule == "daily" and r.dump]
    assert daily == made[2:]
    assert all(r.complete for r in runs)
    keys = all_keys(stack, s3_bucket)
    assert len(keys) == 2 * 3  # three backups left, each a dump and a manifest
    assert weekly.key in keys
    assert not open_uploads(stack, s3_bucket)
    newest = find_backup(where.store, where.prefix, where.name, schedule="daily", key=None)
    assert newest == made[-1]
