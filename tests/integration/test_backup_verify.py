"""`backup verify` restores into a scratch database on another server, or reads the archive
without a database, and holds the result against the manifest. Never on the primary."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from backupkit import (
    all_keys,
    cli,
    cli_env,
    folder_of,
    quiet,
    scratch_server,
    seed,
    target,
)

from lokifi_storage.domain.backup_catalog import sidecar_key
from lokifi_storage.jobs.backup_create import CreateOptions, create_backup
from lokifi_storage.jobs.backup_restore import RestoreOptions, list_backups
from lokifi_storage.jobs.backup_verify import VerifyResult, verify_backup
from lokifi_storage.jobs.outcome import BackupCorruptError, JobError, VerifyMismatchError
from stackfixtures import PgDatabase, StackEnv


@pytest.fixture(scope="module")
def scratch(stack: StackEnv) -> Iterator[str]:
    """The verify target: a server of its own, not the primary's."""
    with scratch_server(stack) as url:
        yield url


def _backup(stack: StackEnv, db: PgDatabase, bucket: str, compression: str = "zstd") -> str:
    options = CreateOptions(schedule="daily", compression=compression, pg_bin=stack.pg_bin)
    return create_backup(db, target(stack, bucket, db=db), options, quiet()).key


def _verify_cli(
    stack: StackEnv, db: PgDatabase, bucket: str, scratch: str | None = None
) -> subprocess.CompletedProcess[str]:
    extra = ["--target-env", "LOKIFI_VERIFY_URL"] if scratch else []
    return subprocess.run(
        [cli(), "backup", "verify", "--schedule", "daily", *extra],
        env=cli_env(stack, db, bucket, LOKIFI_VERIFY_URL=scratch or ""),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _scratch_databases(url: str) -> set[str]:
    """Scratch databases of a verify on the server of `url` (on the shared primary, only these
    are compared: other tests create and drop databases there all the time)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'lokifi_verify_%'")
        return {row[0] for row in rows}


def _verify_on(
    stack: StackEnv, bucket: str, key: str, target_url: str, primary: PgDatabase
) -> VerifyResult:
    """`backup verify` of `key` restored on `target_url`'s server, as the CronJob runs it."""
    return verify_backup(
        target(stack, bucket).store,
        key,
        target_url,
        RestoreOptions(pg_bin=stack.pg_bin),
        quiet(),
        primary_url=primary,
    )


def test_a_good_backup_verifies_and_the_result_is_recorded_beside_it(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, scratch: str
) -> None:
    seed(pg_database)
    key = _backup(stack, pg_database, s3_bucket)
    before = _scratch_databases(stack.pg_primary_url)

    result = _verify_on(stack, s3_bucket, key, scratch, pg_database)

    assert result.ok
    assert result.kind == "restore"
    assert result.tables == 5  # ai_threads, three partitions, archive."Odd Name"
    assert (
        _scratch_databases(stack.pg_primary_url) == before
    )  # nothing was ever created on the primary
    assert _scratch_databases(scratch) == set()  # the scratch database is gone
    (run,) = list_backups(target(stack, s3_bucket).store, "backups/", folder_of(pg_database))
    assert run.verified is True
    assert run.verify_kind == "restore"
    marker = json.loads(
        stack.s3_client()
        .get_object(Bucket=s3_bucket, Key=sidecar_key(key, ".verify-ok.json"))["Body"]
        .read()
    )
    assert marker["ok"] is True


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_a_corrupted_object_fails_verify_with_a_clear_message(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, compression: str, scratch: str
) -> None:
    seed(pg_database)
    key = _backup(stack, pg_database, s3_bucket, compression)
    s3 = stack.s3_client()
    body = bytearray(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    for offset in range(len(body) // 2, len(body) // 2 + 64):
        body[offset] ^= 0xA5
    s3.put_object(Bucket=s3_bucket, Key=key, Body=bytes(body))
    before = _scratch_databases(stack.pg_primary_url)

    with pytest.raises(BackupCorruptError, match=re.escape(f"backup {key} is corrupt")) as raised:
        _verify_on(stack, s3_bucket, key, scratch, pg_database)
    assert raised.value.exit_code == 3
    assert _scratch_databases(stack.pg_primary_url) == before
    assert _scratch_databases(scratch) == set()
    assert sidecar_key(key, ".verify-failed.json") in all_keys(stack, s3_bucket)

    cli_run = _verify_cli(stack, pg_database, s3_bucket, scratch)
    assert cli_run.returncode == 3
    assert "is corrupt" in cli_run.stderr
    # Without a target, the archive check finds the same damage.
    cli_run = _verify_cli(stack, pg_database, s3_bucket)
    assert cli_run.returncode == 3
    assert "is corrupt" in cli_run.stderr
    assert sidecar_key(key, ".verify-failed.archive.json") in all_keys(stack, s3_bucket)


def test_row_counts_that_differ_from_the_manifest_fail_verify_naming_the_table(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, scratch: str
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
        _verify_on(stack, s3_bucket, key, scratch, pg_database)
    cli_run = _verify_cli(stack, pg_database, s3_bucket, scratch)
    assert cli_run.returncode == 4
    assert "manifest has 201" in cli_run.stderr
    # The archive check counts the rows of the dump itself and finds the same difference.
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
    assert "verified (read in full without a database): 5 tables" in run.stdout
    (entry,) = list_backups(target(stack, s3_bucket).store, "backups/", folder_of(pg_database))
    assert entry.verified is True
    assert entry.verify_kind == "archive"
    listing = subprocess.run(
        [cli(), "backup", "list", "--json"],
        env=cli_env(stack, pg_database, s3_bucket),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    (record,) = [json.loads(line) for line in listing.stdout.splitlines()]
    assert (record["verified"], record["verifyKind"]) == (True, "archive")


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


def test_verification_never_writes_to_the_primary(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, scratch: str
) -> None:
    """Path 3: a verify target on the primary's server is refused before anything is written;
    without a target the verification needs no database; leftovers on the target are removed."""
    seed(pg_database)
    key = _backup(stack, pg_database, s3_bucket)
    store = target(stack, s3_bucket).store
    before = _scratch_databases(stack.pg_primary_url)
    # A replica of the primary is the same server by its system_identifier.
    for on_primary in (stack.pg_primary_url, pg_database.replica_url):
        with pytest.raises(JobError, match="is the primary's server"):
            verify_backup(
                store,
                key,
                on_primary,
                RestoreOptions(pg_bin=stack.pg_bin),
                quiet(),
                primary_url=pg_database,
            )
    assert _scratch_databases(stack.pg_primary_url) == before
    assert [k for k in all_keys(stack, s3_bucket) if ".verify-" in k] == []

    # No target: the archive is read in full without a database.
    result = verify_backup(store, key, None, RestoreOptions(pg_bin=stack.pg_bin), quiet())
    assert result.kind == "archive"
    assert result.tables == 5
    assert _scratch_databases(stack.pg_primary_url) == before
    assert sidecar_key(key, ".verify-ok.archive.json") in all_keys(stack, s3_bucket)

    # A scratch database left by a killed run on the target is dropped by the next run.
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "lokifi_verify_20200101000000_deadbeef"')
    result = verify_backup(
        store, key, scratch, RestoreOptions(pg_bin=stack.pg_bin), quiet(), primary_url=pg_database
    )
    assert result.kind == "restore"
    assert _scratch_databases(scratch) == set()
    assert _scratch_databases(stack.pg_primary_url) == before
    keys = all_keys(stack, s3_bucket)
    assert sidecar_key(key, ".verify-ok.json") in keys
    assert sidecar_key(key, ".verify-ok.archive.json") not in keys
