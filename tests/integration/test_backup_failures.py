"""A backup that fails or is interrupted leaves nothing that looks like a backup behind."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from backupkit import (
    all_keys,
    cli,
    cli_env,
    open_uploads,
    pg_bin_with_faulty_pg_dump,
    quiet,
    seed,
    target,
)

from lokifi_storage.jobs.backup_create import CreateOptions, create_backup, prune_schedule
from lokifi_storage.jobs.outcome import JobError
from stackfixtures import PgDatabase, StackEnv

MIB = 1024 * 1024


def _wait_for_uploaded_part(stack: StackEnv, bucket: str, timeout: float = 60) -> None:
    s3 = stack.s3_client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            parts = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            if parts.get("Parts"):
                return
        time.sleep(0.02)
    raise AssertionError("no part was uploaded in time")


def _start_backup(
    stack: StackEnv, db: PgDatabase, bucket: str, pg_bin: str
) -> subprocess.Popen[str]:
    argv = [
        cli(),
        "backup",
        "create",
        "--schedule",
        "daily",
        "--compression",
        "none",
        "--part-size-mb",
        "5",
    ]
    env = cli_env(stack, db, bucket, LOKIFI_PG_BIN=pg_bin)
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _interrupted_backup(
    stack: StackEnv, db: PgDatabase, bucket: str, tmp_path: Path, stop: signal.Signals
) -> tuple[int, str]:
    """A `backup create` of a seeded database through a slow pg_dump, sent `stop` once its
    first part is in S3; its exit code and stderr."""
    seed(db, messages=150_000)
    pg_bin = pg_bin_with_faulty_pg_dump(stack, tmp_path / "bin", rate=512 * 1024)
    process = _start_backup(stack, db, bucket, pg_bin)
    try:
        _wait_for_uploaded_part(stack, bucket)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr


def test_sigterm_during_the_upload_aborts_it_and_leaves_no_object(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, tmp_path: Path
) -> None:
    returncode, stderr = _interrupted_backup(
        stack, pg_database, s3_bucket, tmp_path, signal.SIGTERM
    )
    assert returncode == 128 + signal.SIGTERM, stderr
    assert "terminated" in stderr
    assert all_keys(stack, s3_bucket) == []
    assert open_uploads(stack, s3_bucket) == []


def test_pg_dump_dying_mid_dump_fails_the_backup_and_leaves_no_object(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, tmp_path: Path
) -> None:
    seed(pg_database, messages=150_000)
    pg_bin = pg_bin_with_faulty_pg_dump(stack, tmp_path / "bin", rate=4 * MIB, cut=12 * MIB)
    options = CreateOptions(
        schedule="daily", compression="none", part_size=5 * MIB, keep=1, pg_bin=pg_bin
    )
    with pytest.raises(JobError, match="pg_dump exited with 1"):
        create_backup(pg_database, target(stack, s3_bucket), options, quiet())
    assert all_keys(stack, s3_bucket) == []
    assert open_uploads(stack, s3_bucket) == []


def test_a_killed_run_is_never_a_backup_and_the_next_prune_aborts_its_upload(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str, tmp_path: Path
) -> None:
    # SIGKILL: no chance to clean up
    _interrupted_backup(stack, pg_database, s3_bucket, tmp_path, signal.SIGKILL)
    assert all_keys(stack, s3_bucket) == []
    assert len(open_uploads(stack, s3_bucket)) == 1

    where = target(stack, s3_bucket, db=pg_database)  # the folder the CLI run used
    soon = prune_schedule(where, "daily", 3, datetime.now(UTC) + timedelta(hours=1), quiet())
    assert soon.abort == []  # it might still be running: left alone within the grace period
    later = prune_schedule(where, "daily", 3, datetime.now(UTC) + timedelta(hours=25), quiet())
    assert len(later.abort) == 1
    assert open_uploads(stack, s3_bucket) == []


def test_a_database_that_cannot_be_reached_fails_before_anything_is_uploaded(
    stack: StackEnv, s3_bucket: str
) -> None:
    url = "postgresql://nobody:secret-pw@127.0.0.1:1/none"
    result = subprocess.run(
        [cli(), "backup", "create", "--schedule", "daily"],
        env=cli_env(stack, url, s3_bucket),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout
    assert all_keys(stack, s3_bucket) == []
