"""Backups of two same-named resources in two namespaces share a bucket and never meet.

Path 2: keys carry the namespace and the source's identity (system_identifier and database), so
prune, list, restore and the status each see only their own resource's backups of its own
database. Real S3 server over HTTP, real PostgreSQL, the CLI as the CronJobs run it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import psycopg
from backupkit import all_keys, cli, cli_env, folder_of, fresh_database, seed

from lokifi_storage.api.spec import BackupsSpec, ObjectStorageSpec
from lokifi_storage.clients.s3 import make_client
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.reconcile.backups import reconcile_backups
from stackfixtures import PgDatabase, StackEnv


def _run(stack: StackEnv, url: str, bucket: str, namespace: str, *args: str) -> str:
    done = subprocess.run(
        [cli(), *args],
        env=cli_env(stack, url, bucket, LOKIFI_BACKUP_NAMESPACE=namespace),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _status(stack: StackEnv, bucket: str, folder: str) -> dict[str, object]:
    spec = BackupsSpec.model_validate(
        {"bucket": bucket, "schedules": [{"name": "daily", "schedule": "0 2 * * *", "keep": 5}]}
    )
    storage = ObjectStorageSpec.model_validate(
        {
            "endpoint": stack.s3_endpoint,
            "allowPlainHttp": True,
            "credentialsSecretRef": {"name": "s3"},
        }
    )
    client = make_client(
        stack.s3_endpoint, stack.aws_region, stack.aws_access_key_id, stack.aws_secret_access_key
    )
    report = reconcile_backups(
        spec, storage, None, None, folder=folder, now=datetime.now(UTC), client=client
    )
    (daily,) = status_json(report.status)["backups"]  # type: ignore[misc]
    return dict(daily)


def test_same_named_resources_in_two_namespaces_never_touch_each_others_backups(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database, messages=300)
    create = ["backup", "create", "--schedule", "daily"]
    for _ in range(3):
        _run(stack, pg_database, s3_bucket, "team-a", *create, "--keep", "5")
    team_a = [k for k in all_keys(stack, s3_bucket) if k.endswith(".dump.zst")]
    assert len(team_a) == 3
    assert all(k.startswith(f"backups/{folder_of(pg_database, 'team-a')}/daily/") for k in team_a)

    with fresh_database(stack, "team_b_db") as other:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute("CREATE TABLE only_in_b (n int)")
            conn.execute("INSERT INTO only_in_b SELECT generate_series(1, 7)")
        # team-b's resource has the same name and keeps 1: its prune must not see team-a's.
        _run(stack, other, s3_bucket, "team-b", *create, "--keep", "1")
        _run(stack, other, s3_bucket, "team-b", *create, "--keep", "1")
        keys = all_keys(stack, s3_bucket)
        assert [k for k in keys if k in team_a] == team_a

        listed = _run(stack, other, s3_bucket, "team-b", "backup", "list", "--json")
        (only,) = [json.loads(line) for line in listed.splitlines()]
        assert only["key"].startswith(f"backups/{folder_of(other, 'team-b')}/daily/")

        status_b = _status(stack, s3_bucket, folder_of(other, "team-b"))
        assert status_b["count"] == 1
        assert status_b["lastKey"] == only["key"]
        status_a = _status(stack, s3_bucket, folder_of(pg_database, "team-a"))
        assert status_a["count"] == 3
        assert status_a["lastKey"] == team_a[-1]

        # restore --schedule for team-b restores team-b's database, never team-a's.
        with fresh_database(stack, "team_b_restored") as restored:
            done = subprocess.run(
                [cli(), "restore", "--to-env", "RESTORE_URL", "--schedule", "daily"],
                env={
                    **cli_env(stack, other, s3_bucket, LOKIFI_BACKUP_NAMESPACE="team-b"),
                    "RESTORE_URL": restored,
                },
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            with psycopg.connect(restored, autocommit=True) as conn:
                tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
            assert "only_in_b" in tables
            assert "ai_threads" not in tables
