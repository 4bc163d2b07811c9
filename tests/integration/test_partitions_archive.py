"""Archive, compress and drop on the real PostgreSQL 15 primary: partitions move, rows stay."""

from __future__ import annotations

import threading

import psycopg
import pytest
from partitionkit import (
    NOW,
    create_messages_table,
    fingerprint,
    insert_messages,
    jobs_env,
    month_start,
    partition_db,
    partitions_of,
    query,
    table_spec,
)
from typer.testing import CliRunner

from example_indexes import THREAD_INDEX
from lokifi_storage.cli import app
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.domain.partitions.actions import (
    ArchivePartition,
    CreateArchiveTable,
)
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.pack import PackPartition
from lokifi_storage.domain.partitions.plan import plan_table
from lokifi_storage.jobs.partition_compress import pack_month
from lokifi_storage.jobs.partitions_args import plans_for
from lokifi_storage.reconcile.partitions import reconcile_tables
from stackfixtures import PgDatabase

ARCHIVE = {"afterDays": 365, "schema": "archive"}
OLD_MONTHS = ["ai_messages_p2024_10", "ai_messages_p2024_11", "ai_messages_p2024_12"]
MARKER = "lokifi_archiving"


def seeded(url: str, rows: int = 3000) -> None:
    """Messages from October 2024 to January 2026, partitioned by month, no archive yet."""
    create_messages_table(url, with_default=True)
    insert_messages(url, month_start(2024, 10), month_start(2026, 1), rows)
    with partition_db(url) as db:
        outcome = reconcile_tables(db, [table_spec(indexes=[THREAD_INDEX])], NOW)
    assert not outcome.failures, outcome.failures
    assert query(url, "SELECT count(*) FROM ai_messages_default") == [(0,)]


def relfilenodes(url: str, names: list[str]) -> dict[str, int]:
    rows = query(
        url,
        "SELECT relname, relfilenode FROM pg_class WHERE relname = ANY(%s)",
        (names,),
    )
    return {str(n): int(f) for n, f in rows}


def test_old_partitions_move_to_the_archive_without_copying_a_row(pg_database: PgDatabase) -> None:
    seeded(pg_database)
    before = fingerprint(pg_database, "ai_messages")
    files = relfilenodes(pg_database, OLD_MONTHS)
    spec = table_spec(indexes=[THREAD_INDEX], archive=ARCHIVE)
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW)
        # Born with a valid bounds CHECK, the partitions need no scan to be archived.
        assert not [w for w in db.writes if "VALIDATE" in w or "ADD CONSTRAINT" in w]
    assert not outcome.failures, outcome.failures
    assert [name for name, _ in partitions_of(pg_database, "archive.ai_messages")] == OLD_MONTHS
    assert "ai_messages_p2024_12" not in dict(partitions_of(pg_database, "ai_messages"))
    assert "ai_messages_p2025_01" in dict(partitions_of(pg_database, "ai_messages"))
    # The same files on disk: the partitions were re-parented, not copied.
    assert relfilenodes(pg_database, OLD_MONTHS) == files
    assert fingerprint(pg_database, "ai_messages", "archive.ai_messages") == before
    checks = query(
        pg_database,
        "SELECT conrelid::regclass::text, convalidated FROM pg_constraint"
        " WHERE conname = 'lokifi_bounds' AND connamespace = 'archive'::regnamespace ORDER BY 1",
    )
    assert checks == [(f"archive.{name}", True) for name in OLD_MONTHS]
    assert query(
        pg_database,
        "SELECT x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'archive' AND c.relname = 'idx_ai_messages_user_thread_time'",
    ) == [(True,)]
    status = status_json(outcome.report().status)["partitions"][0]
    assert status["archived"] == 3
    assert status["oldest"] == "2025-01-01"


def test_archive_without_a_default_partition_detaches_concurrently(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ai_messages_p2024_10 PARTITION OF ai_messages"
            " FOR VALUES FROM ('2024-10-01 00:00:00+00') TO ('2024-11-01 00:00:00+00')"
        )
    insert_messages(pg_database, month_start(2024, 10), month_start(2024, 11), 500)
    before = fingerprint(pg_database, "ai_messages")
    spec = table_spec(archive=ARCHIVE)
    with partition_db(pg_database) as db:
        observed = db.observe(request_for([spec]))["ai_messages"]
        plan = plan_table(spec, observed, NOW)
        archive = next(a for a in plan.actions if isinstance(a, ArchivePartition))
        create = next(a for a in plan.actions if isinstance(a, CreateArchiveTable))
        # The plan creates a DEFAULT partition first, so it archives the plain way; without
        # one, PostgreSQL allows the concurrent detach, which this runs directly.
        assert not archive.concurrently
        db.apply(create)
        db.apply(ArchivePartition(**{**archive.__dict__, "concurrently": True}))
        assert any(s.endswith("CONCURRENTLY") for s in db.writes)
    assert partitions_of(pg_database, "ai_messages") == []
    assert fingerprint(pg_database, "archive.ai_messages") == before


def test_partition_detached_by_an_interrupted_run_is_attached_to_the_archive(
    pg_database: PgDatabase,
) -> None:
    seeded(pg_database)
    before = fingerprint(pg_database, "ai_messages")
    # What an archive run that died right after its concurrent detach leaves: the marker it
    # sets first, then the detach.
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE ai_messages_p2024_10"
            " ADD CONSTRAINT lokifi_archiving CHECK (true) NOT VALID"
        )
        conn.execute("ALTER TABLE ai_messages DETACH PARTITION ai_messages_p2024_10")
    spec = table_spec(indexes=[THREAD_INDEX], archive=ARCHIVE)
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW)
    assert not outcome.failures, outcome.failures
    assert any("attach detached partition public.ai_messages_p2024_10" in a for a in outcome.done)
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages")] == OLD_MONTHS
    assert fingerprint(pg_database, "ai_messages", "archive.ai_messages") == before
    assert query(
        pg_database, "SELECT count(*) FROM pg_constraint WHERE conname = %s", (MARKER,)
    ) == [(0,)]


def test_a_table_a_dba_detached_on_purpose_is_not_adopted_into_the_archive(
    pg_database: PgDatabase,
) -> None:
    """Path 10: a partition someone detached by hand (no operator marker) stays where it is,
    with its rows, however old it is; the partitions the operator archives itself still go."""
    seeded(pg_database)
    kept_rows = query(pg_database, "SELECT count(*) FROM ai_messages_p2024_10")
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("ALTER TABLE ai_messages DETACH PARTITION ai_messages_p2024_10")
    spec = table_spec(indexes=[THREAD_INDEX], archive=ARCHIVE)
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW)
    assert not outcome.failures, outcome.failures
    assert not any("ai_messages_p2024_10" in a for a in outcome.done), outcome.done
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages")] == OLD_MONTHS[1:]
    assert query(
        pg_database,
        "SELECT n.nspname, c.relispartition FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'ai_messages_p2024_10'",
    ) == [("public", False)]
    assert query(pg_database, "SELECT count(*) FROM public.ai_messages_p2024_10") == kept_rows
    assert "not detached by the operator" in outcome.report().condition.message


def test_a_concurrent_archive_marks_the_partition_then_drops_the_marker(
    pg_database: PgDatabase,
) -> None:
    """The marker the operator's own concurrent detach sets is gone once the partition is in
    the archive, so nothing of it is left behind."""
    create_messages_table(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ai_messages_p2024_10 PARTITION OF ai_messages"
            " FOR VALUES FROM ('2024-10-01 00:00:00+00') TO ('2024-11-01 00:00:00+00')"
        )
    insert_messages(pg_database, month_start(2024, 10), month_start(2024, 11), 200)
    spec = table_spec(archive=ARCHIVE)
    with partition_db(pg_database) as db:
        observed = db.observe(request_for([spec]))["ai_messages"]
        plan = plan_table(spec, observed, NOW)
        archive = next(a for a in plan.actions if isinstance(a, ArchivePartition))
        db.apply(next(a for a in plan.actions if isinstance(a, CreateArchiveTable)))
        db.apply(ArchivePartition(**{**archive.__dict__, "concurrently": True}))
        assert any(MARKER in w and "ADD CONSTRAINT" in w for w in db.writes)
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages")] == [
        "ai_messages_p2024_10"
    ]
    assert query(
        pg_database, "SELECT count(*) FROM pg_constraint WHERE conname = %s", (MARKER,)
    ) == [(0,)]


def test_an_interrupted_concurrent_detach_is_finalized(pg_database: PgDatabase) -> None:
    create_messages_table(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ai_messages_p2024_10 PARTITION OF ai_messages"
            " FOR VALUES FROM ('2024-10-01 00:00:00+00') TO ('2024-11-01 00:00:00+00')"
        )
    insert_messages(pg_database, month_start(2024, 10), month_start(2024, 11), 300)
    before = fingerprint(pg_database, "ai_messages")
    # The operator's archive run marks the partition before its concurrent detach.
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE ai_messages_p2024_10 ADD CONSTRAINT {MARKER} CHECK (true) NOT VALID"
        )
    reader = psycopg.connect(pg_database)
    try:
        reader.execute("SELECT count(*) FROM ai_messages")  # an old snapshot the detach waits for
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '300ms'")
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute(
                    "ALTER TABLE ai_messages DETACH PARTITION ai_messages_p2024_10 CONCURRENTLY"
                )
    finally:
        reader.close()
    assert query(pg_database, "SELECT inhdetachpending FROM pg_inherits") == [(True,)]
    spec = table_spec(archive=ARCHIVE)
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW)
    assert not outcome.failures, outcome.failures
    assert outcome.done[0].startswith("finalize the interrupted detach")
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages")] == [
        "ai_messages_p2024_10"
    ]
    assert fingerprint(pg_database, "archive.ai_messages") == before


def test_expired_partitions_are_dropped_only_with_drop_without_export(
    pg_database: PgDatabase,
) -> None:
    seeded(pg_database)
    keep = table_spec(indexes=[THREAD_INDEX], retention={"dropAfterDays": 400})
    with partition_db(pg_database) as db:
        kept = reconcile_tables(db, [keep], NOW)
        assert db.writes == []
    assert "past retention but kept" in kept.report().condition.message
    drop = table_spec(
        indexes=[THREAD_INDEX], retention={"dropAfterDays": 400, "dropWithoutExport": True}
    )
    survivors = query(
        pg_database, "SELECT count(*) FROM ai_messages WHERE created_at >= '2024-12-01'"
    )
    with partition_db(pg_database) as db:
        dropped = reconcile_tables(db, [drop], NOW)
    assert not dropped.failures
    names = [n for n, _ in partitions_of(pg_database, "ai_messages")]
    assert "ai_messages_p2024_11" not in names  # ended 2024-12-01, 410 days before NOW
    assert "ai_messages_p2024_12" in names
    assert query(pg_database, "SELECT count(*) FROM ai_messages") == survivors


def test_compression_packs_archived_months_and_keeps_every_row(
    pg_database: PgDatabase,
) -> None:
    seeded(pg_database, rows=6000)
    spec = table_spec(indexes=[THREAD_INDEX], archive={"afterDays": 365, "compressAfterDays": 400})
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW)
    assert not outcome.failures
    assert status_json(outcome.report().status)["partitions"][0]["pendingCompress"] == 2
    before = fingerprint(pg_database, "archive.ai_messages")
    with partition_db(pg_database) as db:
        todo = [
            a
            for p in plans_for(db, [spec], NOW).values()
            for a in p.deferred
            if isinstance(a, PackPartition)
        ]
        assert [a.month.name for a in todo] == ["ai_messages_p2024_10", "ai_messages_p2024_11"]
        results = [pack_month(db, a) for a in todo]
    assert all(r.rows > 0 and r.bytes_before > 0 and r.bytes_after > 0 for r in results)
    assert (
        sum(r.rows for r in results)
        == query(pg_database, "SELECT count(*) FROM archive.ai_messages_packed p, unnest(p.id)")[0][
            0
        ]
    )
    # Every archived row, plain or packed, through the view.
    assert fingerprint(pg_database, "archive.ai_messages_rows") == before
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages")] == [
        "ai_messages_p2024_12"
    ]
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages_packed")] == [
        "ai_messages_p2024_10",
        "ai_messages_p2024_11",
    ]
    with partition_db(pg_database) as db:
        settled = reconcile_tables(db, [spec], NOW)
        assert db.writes == []
    status = status_json(settled.report().status)["partitions"][0]
    assert status["pendingCompress"] == 0
    assert status["archived"] == 3


def test_compress_cli_reports_sizes_and_queries_go_on_meanwhile(
    pg_database: PgDatabase, tmp_path: object
) -> None:
    seeded(pg_database, rows=3000)
    spec = table_spec(archive={"afterDays": 365, "compressAfterDays": 400})
    with partition_db(pg_database) as db:
        reconcile_tables(db, [spec], NOW)
    env = jobs_env(pg_database, spec)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    conn.execute("SELECT count(*) FROM archive.ai_messages").fetchone()
                except BaseException as error:
                    errors.append(error)
                    return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = CliRunner().invoke(
            app, ["partitions", "compress", "--now", NOW.isoformat()], env=env
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert result.output.count("packed archive.ai_messages_p2024_1") == 2
    assert " -> " in result.output
    assert errors == []
    again = CliRunner().invoke(app, ["partitions", "compress", "--now", NOW.isoformat()], env=env)
    assert again.exit_code == 0
    assert again.output.strip() == "nothing to compress"


def test_plan_command_prints_actions_and_changes_nothing(
    pg_database: PgDatabase, tmp_path: object
) -> None:
    from pathlib import Path

    create_messages_table(pg_database)
    manifest = Path(str(tmp_path)) / "resource.yaml"
    manifest.write_text(
        """
apiVersion: storage.lokifi.ai/v1alpha1
kind: LokifiStorage
metadata: {name: lokifi-dev}
spec:
  postgres:
    primary: {secretRef: {name: lokifi-db, key: url}}
    tables:
      - name: ai_messages
        partitionBy: {column: created_at, interval: month}
        premake: 1
        indexes:
          - name: idx_ai_messages_user_thread_time
            columns: [user_id, thread_id, "created_at DESC"]
"""
    )
    result = CliRunner().invoke(
        app,
        ["plan", "-f", str(manifest), "--offline", "--now", NOW.isoformat()],
        env={"LOKIFI_PRIMARY_URL": str(pg_database)},
    )
    # Exit 2: something would change (the database is reachable, so the plan is complete).
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    start = lines.index("partitions")
    assert lines[start : start + 6] == [
        "partitions",
        "  ai_messages",
        "    + create index idx_ai_messages_user_thread_time on only public.ai_messages",
        "    + create partition public.ai_messages_p2026_01 of public.ai_messages for "
        "[2026-01-01 00:00:00+00, 2026-02-01 00:00:00+00)",
        "    + create partition public.ai_messages_p2026_02 of public.ai_messages for "
        "[2026-02-01 00:00:00+00, 2026-03-01 00:00:00+00)",
        "    + create DEFAULT partition public.ai_messages_default of public.ai_messages",
    ]
    assert lines[-1] == "Plan: 4 to create, 0 to change, 0 to delete (partitions 4)."
    assert partitions_of(pg_database, "ai_messages") == []
    missing = CliRunner().invoke(
        app, ["plan", "-f", str(manifest), "--offline"], env={"LOKIFI_PRIMARY_URL": ""}
    )
    assert missing.exit_code == 1
    assert "LOKIFI_PRIMARY_URL" in missing.output


def test_archived_partitions_stay_queryable_through_the_archive_table(
    pg_database: PgDatabase,
) -> None:
    seeded(pg_database)
    with partition_db(pg_database) as db:
        reconcile_tables(db, [table_spec(indexes=[THREAD_INDEX], archive=ARCHIVE)], NOW)
    plan = query(
        pg_database,
        "EXPLAIN (COSTS OFF) SELECT * FROM archive.ai_messages"
        " WHERE created_at >= '2024-11-03' AND created_at < '2024-11-04'",
    )
    text = " ".join(line for (line,) in plan)
    assert "ai_messages_p2024_11" in text
    assert "ai_messages_p2024_10" not in text  # pruned: bounds hold in the archive too
