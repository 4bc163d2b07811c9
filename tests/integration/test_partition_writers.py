"""Two writers never work on one table's partitions at once, a writer whose Lease is gone stops,
and a failed index build cleans up only what it built itself (path 8), on the real primary."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

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
from test_partitions_export import lifecycle_spec, seeded
from typer.testing import CliRunner

from example_indexes import THREAD_INDEX
from lokifi_storage.api.spec import IndexSpec
from lokifi_storage.cli import app
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.domain.partitions.actions import BuildIndex
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.index_defs import index_def_from_spec
from lokifi_storage.reconcile.fence import Fence, LeadershipLost
from lokifi_storage.reconcile.partitions import reconcile_tables
from stackfixtures import PgDatabase, StackEnv

# The partition-work lock of public.ai_messages as every writer takes it: the two-key advisory
# lock (0x4C4B5350 'LKSP', hashtext('<schema>.<table>')). Written out here, not imported, so
# that this test states the contract other tools (a DBA's script) can rely on too.
LOCK = "SELECT pg_advisory_lock(1280004944, hashtext('public.ai_messages'))"


@contextmanager
def held_by_another_writer(url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    conn = psycopg.connect(url, autocommit=True, application_name="another-writer")
    try:
        conn.execute(LOCK)
        yield conn
    finally:
        conn.close()


def test_reconcile_changes_nothing_while_another_writer_holds_the_table(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database, with_default=True)
    with held_by_another_writer(pg_database), partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec()], NOW)
        assert db.writes == []
    assert partitions_of(pg_database, "ai_messages") == [("ai_messages_default", "DEFAULT")]
    failure = outcome.failures["ai_messages"]
    assert failure.reason == "PartitionWorkBusy"
    assert "another-writer" in failure.message
    condition = outcome.report().condition
    assert (condition.status, condition.reason) == ("False", "PartitionWorkBusy")

    # Once the other writer is done, the same reconcile does the work.
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [table_spec()], NOW)
    assert not outcome.failures, outcome.failures
    assert len(partitions_of(pg_database, "ai_messages")) == 4


def test_export_job_skips_a_table_another_writer_holds(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    spec = lifecycle_spec(s3_bucket)
    seeded(pg_database, spec, rows=800)
    before = fingerprint(pg_database, "ai_messages", "archive.ai_messages")
    env = jobs_env(pg_database, spec, stack)
    with held_by_another_writer(pg_database):
        result = CliRunner().invoke(
            app, ["partitions", "export", "--now", NOW.isoformat(), "--lock-wait", "1"], env=env
        )
    assert result.exit_code == 1, result.output
    assert "SKIPPED ai_messages" in result.output
    assert "another-writer" in result.output
    assert "(waited 1 s)" in result.output
    assert fingerprint(pg_database, "ai_messages", "archive.ai_messages") == before
    assert stack.s3_client().list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_a_job_waits_for_a_writer_that_lets_go_of_the_table(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    """The usual holder is a reconcile pass of a few seconds, or the server session of a killed
    run that lives on until its statement ends: a Job that gave up at once would fail and be
    retried by its controller for nothing."""
    spec = lifecycle_spec(s3_bucket)
    seeded(pg_database, spec, rows=800)
    env = jobs_env(pg_database, spec, stack)
    with held_by_another_writer(pg_database) as holder:
        released = threading.Timer(1.5, holder.close)
        released.start()
        started = time.monotonic()
        result = CliRunner().invoke(
            app, ["partitions", "export", "--now", NOW.isoformat()], env=env
        )
        waited = time.monotonic() - started
        released.join()
    assert result.exit_code == 0, result.output
    assert "SKIPPED" not in result.output
    assert waited >= 1.5  # it did wait: the export cannot have started before the release
    assert stack.s3_client().list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) > 0


def test_a_failed_build_never_drops_an_index_another_session_built(
    pg_database: PgDatabase,
) -> None:
    """Between the planner's look and the build, someone else built an index of the same name:
    CREATE INDEX fails with "already exists", and that index must survive the cleanup."""
    create_messages_table(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ai_messages_p2026_01 PARTITION OF ai_messages"
            " FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')"
        )
        conn.execute("CREATE INDEX idx_theirs ON ai_messages_p2026_01 (user_id)")
    insert_messages(pg_database, month_start(2026, 1), month_start(2026, 2), 200)
    index = index_def_from_spec(IndexSpec.model_validate(THREAD_INDEX))
    build = BuildIndex(
        QName("public", "ai_messages"),
        relation=QName("public", "ai_messages_p2026_01"),
        index=index,
        name="idx_theirs",
    )
    with partition_db(pg_database) as db, pytest.raises(ClientError, match="DuplicateTable"):
        db.apply(build)
    assert query(
        pg_database,
        "SELECT x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " WHERE c.relname = 'idx_theirs'",
    ) == [(True,)]


def test_a_lost_lease_stops_the_partition_work_in_flight(pg_database: PgDatabase) -> None:
    """The reconcile waits for a lock; the Lease is lost meanwhile: the waiting statement is
    cancelled and nothing more is done, even once the lock is free."""
    create_messages_table(pg_database, with_default=True)
    fence = Fence()
    blocker = psycopg.connect(pg_database)
    # The parent only (its partitions stay readable); the transaction is left open.
    blocker.execute("LOCK TABLE ONLY ai_messages IN ACCESS EXCLUSIVE MODE")

    def lose_then_release() -> None:
        time.sleep(1.0)
        fence.lose()
        time.sleep(0.5)
        blocker.rollback()

    helper = threading.Thread(target=lose_then_release)
    helper.start()
    outcome = None
    try:
        with partition_db(pg_database, lock_timeout_ms=5_000) as db:
            outcome = reconcile_tables(db, [table_spec()], NOW, fence=fence)
    except LeadershipLost:
        pass  # on a slow machine the Lease went while the catalog was still being read
    finally:
        helper.join()
        blocker.close()
    if outcome is not None:
        assert outcome.failures["ai_messages"].reason == "LeadershipLost"
        assert outcome.done == []
    assert partitions_of(pg_database, "ai_messages") == [("ai_messages_default", "DEFAULT")]
