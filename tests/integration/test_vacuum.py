"""`lokifi-storage vacuum` against the real primary: partitions, parent statistics, lock timeout."""

from __future__ import annotations

import subprocess

import psycopg
from backupkit import cli, cli_env, seed

from stackfixtures import PgDatabase, StackEnv

PARTITIONS = ("ai_messages_2025_01", "ai_messages_2025_02", "ai_messages_default")


def _vacuum(stack: StackEnv, db: PgDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli(), "vacuum", *args],
        env=cli_env(stack, db, "unused"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _vacuum_counts(db: PgDatabase) -> dict[str, int]:
    with psycopg.connect(db, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || relname, vacuum_count FROM pg_stat_user_tables"
        ).fetchall()
    return {str(name): int(count) for name, count in rows}


def _parent_has_statistics(db: PgDatabase) -> bool:
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stats WHERE schemaname = 'public'"
            " AND tablename = 'ai_messages' AND inherited"
        ).fetchone()
    return bool(row and row[0])


def test_every_partition_is_vacuumed_and_the_parent_gets_statistics(
    stack: StackEnv, pg_database: PgDatabase
) -> None:
    seed(pg_database)
    assert not _parent_has_statistics(pg_database)

    run = _vacuum(
        stack, pg_database, "--tables", "ai_messages,ai_threads", "--tables", "archive.Odd Name"
    )

    assert run.returncode == 0, run.stderr
    counts = _vacuum_counts(pg_database)
    for table in (*PARTITIONS, "ai_threads"):
        assert counts[f"public.{table}"] == 1, table
    assert counts["archive.Odd Name"] == 1
    assert _parent_has_statistics(pg_database)
    assert "VACUUM public.ai_messages_default: " in run.stdout
    assert "ANALYZE public.ai_messages: " in run.stdout
    assert "vacuum finished: 6 statement(s)" in run.stdout


def test_without_tables_every_user_table_and_partition_is_vacuumed(
    stack: StackEnv, pg_database: PgDatabase
) -> None:
    seed(pg_database)

    run = _vacuum(stack, pg_database)

    assert run.returncode == 0, run.stderr
    counts = _vacuum_counts(pg_database)
    assert counts, "the seeded database has user tables"
    # The partitioned parent holds no rows of its own: it gets ANALYZE, its partitions VACUUM.
    counts.pop("public.ai_messages")
    assert {name: n for name, n in counts.items() if n != 1} == {}
    assert "no tables listed: vacuuming all" in run.stdout
    assert _parent_has_statistics(pg_database)


def test_a_locked_partition_is_skipped_after_the_lock_timeout_and_the_rest_vacuumed(
    stack: StackEnv, pg_database: PgDatabase
) -> None:
    seed(pg_database)
    with psycopg.connect(pg_database) as holder:
        holder.execute("LOCK TABLE ai_messages_2025_02 IN SHARE UPDATE EXCLUSIVE MODE")
        run = _vacuum(
            stack, pg_database, "--tables", "ai_messages", "--no-analyze", "--lock-timeout", "0.3"
        )
        holder.rollback()

    assert run.returncode == 3, run.stderr
    assert "SKIPPED VACUUM public.ai_messages_2025_02: lock not granted" in run.stdout
    counts = _vacuum_counts(pg_database)
    assert counts["public.ai_messages_2025_01"] == 1
    assert counts["public.ai_messages_default"] == 1
    assert counts["public.ai_messages_2025_02"] == 0


def test_a_table_that_does_not_exist_exits_5_after_vacuuming_the_others(
    stack: StackEnv, pg_database: PgDatabase
) -> None:
    seed(pg_database)
    run = _vacuum(stack, pg_database, "--tables", "no_such_table,ai_threads")
    assert run.returncode == 5
    assert "table no_such_table does not exist" in run.stdout
    assert _vacuum_counts(pg_database)["public.ai_threads"] == 1


def test_an_unreachable_database_exits_1_without_showing_the_password(
    stack: StackEnv,
) -> None:
    url = "postgresql://lokifi:hunter2-secret@127.0.0.1:1/nothing"
    run = subprocess.run(
        [cli(), "vacuum", "--tables", "t"],
        env=cli_env(stack, url, "unused"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert "127.0.0.1:1" in run.stderr
    assert "hunter2" not in run.stdout + run.stderr
