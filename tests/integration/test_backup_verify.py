"""`backup verify` restores into a scratch database and holds the result against the manifest."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from backupkit import all_keys, cli, cli_env, databases, quiet, seed, target

from lokifi_storage.domain.backup_catalog import sidecar_key
from lokifi_storage.jobs.backup_create import CreateOptions, create_backup
from lokifi_storage.jobs.backup_restore import RestoreOptions, list_backups, verify_backup
from lokifi_storage.jobs.outcome import BackupCorruptError, VerifyMismatchError
from stackfixtures import PgDatabase, StackEnv


def _backup(stack: StackEnv, db: PgDatabase, bucket: str, compression: str = "zstd") -> str:
    options = CreateOptions(schedule="daily", compression=compression, pg_bin=stack.pg_bin)
    return create_backup(db, target(stack, bucket), options, quiet()).key


def _verify_cli(stack: StackEnv, db: PgDatabase, bucket: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli(), "backup", "verify", "--schedule", "daily"],
        env=cli_env(stack, db, bucket),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_good_backup_verifies_and_the_result_is_recorded_beside_it(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database)
    key = _backup(stack, pg_database, s3_bucket)
    before = databases(stack)

    result = verify_backup(
        target(stack, s3_bucket).store,
        key,
        pg_database,
        RestoreOptions(pg_bin=stack.pg_bin),
        quiet(),
    )

    assert result.ok
    assert result.tables == 5  # ai_threads, three partitions, archive."Odd Name"
    assert databases(stack) == before  # the scratch database is gone
    (run,) = list_backups(target(stack, s3_bucket).store, "backups/", "lks")
    assert run.verified is True
    marker = json.loads(
        stack.s3_client()
        .get_object(Bucket=s3_bucket, Key=sidecar_key(key, ".verify-ok.json"))["Body"]
        .read()
    )
    assert marker["ok"] is True


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_a_corrupted_object_fails_verify_with_a_clear_message(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, compression: str
) -> None:
    seed(pg_database)
    key = _backup(stack, pg_database, s3_bucket, compression)
    s3 = stack.s3_client()
    body = bytearray(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    for offset in range(len(body) // 2, len(body) // 2 + 64):
        body[offset] ^= 0xA5
    s3.put_object(Bucket=s3_bucket, Key=key, Body=bytes(body))
    before = databases(stack)

    with pytest.raises(BackupCorruptError, match=re.escape(f"backup {key} is corrupt")) as raised:
        verify_backup(
            target(stack, s3_bucket).store,
            key,
            pg_database,
            RestoreOptions(pg_bin=stack.pg_bin),
            quiet(),
        )
    assert raised.value.exit_code == 3
    assert databases(stack) == before
    assert sidecar_key(key, ".verify-failed.json") in all_keys(stack, s3_bucket)

    cli_run = _verify_cli(stack, pg_database, s3_bucket)
    assert cli_run.returncode == 3
    assert "is corrupt" in cli_run.stderr


def test_row_counts_that_differ_from_the_manifest_fail_verify_naming_the_table(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database)
    key = _backup(stack, pg_database, s3_bucket)
    s3 = stack.s3_client()
    manifest_key = sidecar_key(key, ".manifest.json")
    manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key=manifest_key)["Body"].read())
    for entry in manifest["tables"]:
        if entry["table"] == "ai_threads":
            entry["rows"] += 1
    s3.put_object(Bucket=s3_bucket, Key=manifest_key, Body=json.dumps(manifest).encode())

    with pytest.raises(VerifyMismatchError, match=r"public\.ai_threads: 200 rows restored"):
        verify_backup(
            target(stack, s3_bucket).store,
            key,
            pg_database,
            RestoreOptions(pg_bin=stack.pg_bin),
            quiet(),
        )
    cli_run = _verify_cli(stack, pg_database, s3_bucket)
    assert cli_run.returncode == 4
    assert "manifest has 201" in cli_run.stderr


def test_create_with_verify_checks_the_new_backup_in_the_same_run(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database)
    run = subprocess.run(
        [cli(), "backup", "create", "--schedule", "daily", "--keep", "3", "--verify"],
        env=cli_env(stack, pg_database, s3_bucket),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "verified: 5 tables" in run.stdout
    (entry,) = list_backups(target(stack, s3_bucket).store, "backups/", "lks")
    assert entry.verified is True


def test_the_cli_lists_and_restores_with_the_url_only_in_the_environment(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    from backupkit import fingerprints, fresh_database

    seed(pg_database)
    key = _backup(stack, pg_database, s3_bucket)
    env = cli_env(stack, pg_database, s3_bucket)
    listing = subprocess.run(
        [cli(), "backup", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    (record,) = [json.loads(line) for line in listing.stdout.splitlines()]
    assert record["key"] == key
    assert record["complete"] is True

    with fresh_database(stack, "cli_restore") as restored:
        restore = subprocess.run(
            [cli(), "restore", "--to-env", "RESTORE_URL", "--jobs", "2"],
            env={**env, "RESTORE_URL": restored},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert restore.returncode == 0, restore.stderr
        assert fingerprints(restored) == fingerprints(pg_database)
        again = subprocess.run(
            [cli(), "restore", "--to-env", "RESTORE_URL"],
            env={**env, "RESTORE_URL": restored},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert again.returncode == 1
        assert "already has tables" in again.stderr


def test_a_corrupt_backup_restores_nothing_into_the_target(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    from backupkit import fingerprints, fresh_database

    from lokifi_storage.jobs.backup_restore import restore_backup

    seed(pg_database, messages=20_000)
    key = _backup(stack, pg_database, s3_bucket, "lz4")
    s3 = stack.s3_client()
    body = bytearray(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    body[len(body) * 3 // 4] ^= 0x5A
    s3.put_object(Bucket=s3_bucket, Key=key, Body=bytes(body))

    with fresh_database(stack, "corrupt_target") as restored:
        with pytest.raises(BackupCorruptError, match="is corrupt"):
            restore_backup(
                target(stack, s3_bucket).store,
                key,
                restored,
                RestoreOptions(pg_bin=stack.pg_bin),
                quiet(),
            )
        assert fingerprints(restored) == {}
