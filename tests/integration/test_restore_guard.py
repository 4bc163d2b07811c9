"""`restore --clean` over the live primary is refused unless the database's name is repeated.

Path 4, on the real PostgreSQL and S3 server: the primary is the database LOKIFI_PRIMARY_URL
names (what a LokifiStorage's CronJobs carry from spec.postgres.primary.secretRef).
"""

from __future__ import annotations

import subprocess

import psycopg
from backupkit import cli, cli_env, fingerprints, fresh_database, quiet, seed, target

from lokifi_storage.jobs.backup_create import CreateOptions, create_backup
from stackfixtures import PgDatabase, StackEnv


def query_count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_restore_clean_over_the_primary_needs_its_name_repeated(
    stack: StackEnv, pg_database: PgDatabase, s3_bucket: str
) -> None:
    seed(pg_database, messages=400)
    create_backup(
        pg_database,
        target(stack, s3_bucket, db=pg_database),
        CreateOptions(schedule="daily", pg_bin=stack.pg_bin),
        quiet(),
    )
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("INSERT INTO ai_threads (id, user_id) VALUES (999999, 1)")
    live = fingerprints(pg_database)
    env = {**cli_env(stack, pg_database, s3_bucket), "RESTORE_URL": str(pg_database)}

    def restore(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli(), "restore", "--to-env", "RESTORE_URL", "--clean", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    refused = restore()
    assert refused.returncode == 1, refused.stdout
    assert "refusing restore --clean" in refused.stderr
    assert "primary database" in refused.stderr
    assert f"--replace-database {pg_database.name}" in refused.stderr
    assert fingerprints(pg_database) == live  # nothing was touched

    wrong = restore("--replace-database", "lokifi")
    assert wrong.returncode == 1
    assert fingerprints(pg_database) == live

    # The database of another resource's primary is not protected by this one's URL, and
    # with no primary URL at all --clean is refused as well.
    unknown = subprocess.run(
        [cli(), "restore", "--to-env", "RESTORE_URL", "--clean", "--source", "x-y"],
        env={k: v for k, v in env.items() if k != "LOKIFI_PRIMARY_URL"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert unknown.returncode == 1
    assert "cannot tell whether it is a LokifiStorage primary" in unknown.stderr

    # Another resource's primary (LOKIFI_PRIMARY_URL names this one's): recognised by the
    # bounds CHECK the operator puts on every partition it makes.
    with fresh_database(stack, "other_primary") as other:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE m_p2026_01 (t timestamptz,"
                " CONSTRAINT lokifi_bounds CHECK (t >= '2026-01-01' AND t < '2026-02-01'))"
            )
            conn.execute("INSERT INTO m_p2026_01 VALUES ('2026-01-02')")
        env["RESTORE_URL"] = other
        other_refused = restore()
        assert other_refused.returncode == 1
        assert "made by the lokifi-storage operator" in other_refused.stderr
        assert query_count(other, "m_p2026_01") == 1
        env["RESTORE_URL"] = str(pg_database)

    confirmed = restore("--replace-database", pg_database.name)
    assert confirmed.returncode == 0, confirmed.stderr
    restored = fingerprints(pg_database)
    assert restored != live  # the row added after the backup is gone: the backup was restored
    assert restored["public.ai_threads"][0] == live["public.ai_threads"][0] - 1
