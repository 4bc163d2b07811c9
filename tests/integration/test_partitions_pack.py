"""Packed archive months on the real PostgreSQL 15 primary: the original rows come back through
the view and the per-group function, a kill at any point of packing or unpacking leaves one
complete form, and sub-partitioned months go through archive, pack, export and drop."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import zstandard
from partitionkit import (
    NOW,
    catalog_snapshot,
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
from lokifi_storage.api.spec import TableSpec
from lokifi_storage.cli import app
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.pack import PackPartition, plan_unpack
from lokifi_storage.domain.partitions.pack_steps import digest_query
from lokifi_storage.jobs.partition_compress import pack_month, unpack_month
from lokifi_storage.jobs.partitions_args import plans_for
from lokifi_storage.reconcile.partitions import reconcile_tables
from stackfixtures import PgDatabase, StackEnv

COMPRESS = {"afterDays": 365, "compressAfterDays": 400}
# October 2024 ends on 2024-11-01: archived 395 days later, packed after 404, exported and
# dropped after 441 (NOW) with dropAfterDays 440.
ARCHIVE_TIME = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
COMPRESS_TIME = dt.datetime(2025, 12, 10, tzinfo=dt.UTC)
OCTOBER = "archive.ai_messages_p2024_10"
OCTOBER_ROWS = "(SELECT * FROM archive.ai_messages_rows WHERE created_at < '2024-11-01') AS m"


def seeded(url: str, spec: TableSpec, rows: int = 4000) -> None:
    """Messages from October 2024 to January 2026, October to December 2024 archived."""
    create_messages_table(url, with_default=True)
    # 60 threads of 20 users: each thread one user, several messages a month.
    insert_messages(url, month_start(2024, 10), month_start(2026, 1), rows, users=20, threads=60)
    with partition_db(url) as db:
        outcome = reconcile_tables(db, [spec], NOW)
    assert not outcome.failures, outcome.failures


def packs(db: PartitionDatabase, spec: TableSpec, now: dt.datetime = NOW) -> list[PackPartition]:
    return [
        a
        for p in plans_for(db, [spec], now).values()
        for a in p.deferred
        if isinstance(a, PackPartition)
    ]


def columns_of(url: str, schema: str, name: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, name),
    )


def test_a_packed_month_reads_back_with_the_original_rows_columns_and_types(
    pg_database: PgDatabase,
) -> None:
    spec = table_spec(indexes=[THREAD_INDEX], archive=COMPRESS)
    seeded(pg_database, spec)
    before = fingerprint(pg_database, "archive.ai_messages")
    user, thread = query(
        pg_database,
        "SELECT user_id, thread_id FROM archive.ai_messages GROUP BY 1, 2"
        " HAVING min(created_at) < '2024-11-01' AND max(created_at) >= '2024-12-01' LIMIT 1",
    )[0]
    history = query(
        pg_database,
        "SELECT * FROM archive.ai_messages WHERE user_id = %s AND thread_id = %s"
        " ORDER BY created_at",
        (user, thread),
    )
    with partition_db(pg_database) as db:
        for action in packs(db, spec):
            pack_month(db, action)

    assert fingerprint(pg_database, "archive.ai_messages_rows") == before
    assert columns_of(pg_database, "archive", "ai_messages_rows") == columns_of(
        pg_database, "archive", "ai_messages"
    )
    # One thread, across packed October/November and plain December, in time order.
    assert len(history) >= 3
    assert (
        query(
            pg_database,
            "SELECT * FROM archive.ai_messages_group(%s, %s)",
            (user, thread),
        )
        == history
    )
    with psycopg.connect(pg_database, autocommit=True) as conn:
        # Tiny test months: forbid the sequential scan the planner would rather do, to show
        # the key lookup is an index lookup (on real months it is the cheaper plan anyway).
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                "EXPLAIN SELECT * FROM archive.ai_messages_group(%s, %s)", (user, thread)
            )
        )
    assert "ai_messages_p2024_10_keys" in plan  # one GIN probe per packed month
    assert "Seq Scan" not in plan
    # The thread's October messages are in one stored row, whole.
    assert query(
        pg_database,
        "SELECT count(DISTINCT p.ctid), count(*) FROM archive.ai_messages_p2024_10 p,"
        " unnest(p.user_id, p.thread_id) AS u(user_id, thread_id)"
        " WHERE p.lokifi_keys @> ARRAY[row(%s::bigint, %s::bigint)::text]"
        " AND u.user_id = %s AND u.thread_id = %s",
        (user, thread, user, thread),
    ) == [(1, sum(1 for row in history if row[-1] < month_start(2024, 11)))]


def test_pack_rows_1_stores_each_group_alone_and_a_huge_thread_is_split_but_whole(
    pg_database: PgDatabase,
) -> None:
    spec = table_spec(archive={**COMPRESS, "packRows": 1})
    create_messages_table(pg_database, with_default=True)
    insert_messages(pg_database, month_start(2024, 10), month_start(2026, 1), 2000)
    # A bot thread of 2,500 messages in October: more than one stored row may hold (1000).
    insert_messages(
        pg_database, month_start(2024, 10), month_start(2024, 11), 2500, users=1, threads=1
    )
    with partition_db(pg_database) as db:
        assert not reconcile_tables(db, [spec], NOW).failures
    before = fingerprint(pg_database, "archive.ai_messages")
    groups = query(
        pg_database,
        "SELECT user_id, thread_id, count(*) FROM archive.ai_messages_p2024_10 GROUP BY 1, 2",
    )
    ((before_bot,),) = query(
        pg_database,
        "SELECT count(*) FROM archive.ai_messages WHERE user_id = 0 AND thread_id = 1",
    )
    assert before_bot >= 2500
    with partition_db(pg_database) as db:
        for action in packs(db, spec):
            pack_month(db, action)
    assert fingerprint(pg_database, "archive.ai_messages_rows") == before
    # One stored row per group, except the bot thread: three stored rows of <= 1000.
    stored = query(
        pg_database,
        "SELECT lokifi_keys, lokifi_rows FROM archive.ai_messages_p2024_10 ORDER BY lokifi_first",
    )
    assert all(len(keys) == 1 for keys, _ in stored)
    assert len(stored) == len(groups) + 2
    assert sorted(n for keys, n in stored if keys == ["(0,1)"]) == [500, 1000, 1000]
    bot = query(pg_database, "SELECT created_at FROM archive.ai_messages_group(0, 1)")
    assert len(bot) == before_bot
    assert [r[0] for r in bot] == sorted(r[0] for r in bot)


def test_the_digest_catches_a_value_moved_to_another_row(pg_database: PgDatabase) -> None:
    spec = table_spec(archive=COMPRESS)
    seeded(pg_database, spec, rows=2000)
    with partition_db(pg_database) as db:
        (october, _) = packs(db, spec)
        pack_month(db, october)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE archive.october_copy AS SELECT * FROM {OCTOBER_ROWS}")
        check = digest_query(october.layout, QName("archive", "october_copy"), october.month)
        assert conn.execute(check).fetchone() == (True,)
        # Same rows, same values, same count: only two contents swapped between rows.
        conn.execute(
            f"UPDATE {OCTOBER} SET content[1] = content[2], content[2] = content[1]"
            " WHERE ctid = (SELECT ctid FROM archive.ai_messages_p2024_10 WHERE lokifi_rows > 1"
            " LIMIT 1)"
        )
        assert conn.execute(check).fetchone() == (False,)


def test_unpack_restores_an_ordinary_month_and_compress_packs_it_again(
    pg_database: PgDatabase,
) -> None:
    spec = table_spec(indexes=[THREAD_INDEX], archive=COMPRESS)
    seeded(pg_database, spec, rows=3000)
    before = fingerprint(pg_database, "archive.ai_messages")
    env = jobs_env(pg_database, spec)
    packed = CliRunner().invoke(app, ["partitions", "compress", "--now", NOW.isoformat()], env=env)
    assert packed.exit_code == 0, packed.output
    assert "packed archive.ai_messages_p2024_10" in packed.output
    unknown = CliRunner().invoke(app, ["partitions", "unpack", "ai_messages_p2023_01"], env=env)
    assert unknown.exit_code == 1
    assert "not a packed month of archive.ai_messages" in unknown.output
    result = CliRunner().invoke(app, ["partitions", "unpack", "ai_messages_p2024_10"], env=env)
    assert result.exit_code == 0, result.output
    assert "unpacked archive.ai_messages_p2024_10" in result.output
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages")] == [
        "ai_messages_p2024_10",
        "ai_messages_p2024_12",
    ]
    assert fingerprint(pg_database, "archive.ai_messages_rows") == before
    # Restored with the spec's index, attached to the archive table's: nothing left to fix.
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], NOW)
        assert db.writes == []
    assert status_json(outcome.report().status)["partitions"][0]["pendingCompress"] == 1
    again = CliRunner().invoke(app, ["partitions", "compress", "--now", NOW.isoformat()], env=env)
    assert again.exit_code == 0, again.output
    assert "packed archive.ai_messages_p2024_10" in again.output
    assert fingerprint(pg_database, "archive.ai_messages_rows") == before


def test_the_view_and_function_exist_from_the_first_compress_run_and_are_made_once(
    pg_database: PgDatabase,
) -> None:
    spec = table_spec(archive={"afterDays": 365, "compressAfterDays": 3000})
    seeded(pg_database, spec, rows=1000)
    env = jobs_env(pg_database, spec)
    first = CliRunner().invoke(app, ["partitions", "compress", "--now", NOW.isoformat()], env=env)
    assert first.exit_code == 0, first.output
    assert "created archive.ai_messages_packed" in first.output
    assert "nothing to compress" in first.output
    assert fingerprint(pg_database, "archive.ai_messages_rows") == fingerprint(
        pg_database, "archive.ai_messages"
    )
    user, thread = query(pg_database, "SELECT user_id, thread_id FROM archive.ai_messages LIMIT 1")[
        0
    ]
    assert query(
        pg_database, "SELECT count(*) FROM archive.ai_messages_group(%s, %s)", (user, thread)
    ) == query(
        pg_database,
        "SELECT count(*) FROM archive.ai_messages WHERE user_id = %s AND thread_id = %s",
        (user, thread),
    )
    catalog = catalog_snapshot(pg_database)
    again = CliRunner().invoke(app, ["partitions", "compress", "--now", NOW.isoformat()], env=env)
    assert again.exit_code == 0, again.output
    assert again.output.strip() == "nothing to compress"
    assert catalog_snapshot(pg_database) == catalog


@contextmanager
def holding(url: str, lock: str) -> Iterator[None]:
    """Another session holding `lock` (a LOCK TABLE statement) until the block ends."""
    with psycopg.connect(url) as conn:
        conn.execute(lock)
        yield
        conn.rollback()


def kill_when_waiting(
    url: str, work: Callable[[PartitionDatabase], object], statement: str
) -> None:
    """Run `work` on its own connection, wait until it waits for a lock in `statement`, then
    terminate its backend, as a node failure or an OOM kill would."""
    errors: list[BaseException] = []
    pid: list[int] = []

    def run() -> None:
        try:
            with partition_db(url, lock_timeout_ms=120_000, attempts=1) as db:
                pid.append(db.conn.info.backend_pid)
                work(db)
        except (ClientError, psycopg.Error) as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    waiting = False
    while time.monotonic() < deadline and not waiting:
        time.sleep(0.05)
        rows = query(
            url,
            "SELECT wait_event_type, query FROM pg_stat_activity WHERE pid = %s",
            (pid[0] if pid else 0,),
        )
        waiting = bool(rows) and rows[0][0] == "Lock" and statement in str(rows[0][1])
    if waiting:
        query(url, "SELECT pg_terminate_backend(%s)", (pid[0],))
    thread.join(timeout=60)
    assert waiting, f"never waited in {statement!r}"
    assert errors, "the killed work reported no failure"


@pytest.mark.parametrize(
    ("lock", "statement"),
    [
        # before anything is written
        ("LOCK TABLE archive.ai_messages_p2024_10 IN ROW EXCLUSIVE MODE", "LOCK TABLE"),
        # the packed copy is built and verified, the plain month not yet detached
        ("LOCK TABLE archive.ai_messages IN ACCESS SHARE MODE", "DETACH PARTITION"),
        # the plain month is detached and dropped, the packed one not yet attached
        ("LOCK TABLE archive.ai_messages_packed IN EXCLUSIVE MODE", "ATTACH PARTITION"),
    ],
)
def test_a_kill_at_any_point_of_packing_leaves_the_plain_month_whole(
    pg_database: PgDatabase, lock: str, statement: str
) -> None:
    spec = table_spec(indexes=[THREAD_INDEX], archive=COMPRESS)
    seeded(pg_database, spec, rows=3000)
    with partition_db(pg_database) as db:
        (october, november) = packs(db, spec)
        pack_month(db, november)  # creates the packed table, the view and the function
    before = fingerprint(pg_database, "archive.ai_messages_rows")
    october_rows = fingerprint(pg_database, OCTOBER)
    with holding(pg_database, lock):
        kill_when_waiting(pg_database, lambda db: pack_month(db, october), statement)
    assert fingerprint(pg_database, OCTOBER) == october_rows
    assert fingerprint(pg_database, "archive.ai_messages_rows") == before
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages_packed")] == [
        "ai_messages_p2024_11"
    ]
    assert query(pg_database, "SELECT to_regclass('archive.ai_messages_p2024_10_packing')") == [
        (None,)
    ]
    # The next run packs it.
    with partition_db(pg_database) as db:
        (again,) = packs(db, spec)
        pack_month(db, again)
    assert fingerprint(pg_database, "archive.ai_messages_rows") == before


@pytest.mark.parametrize(
    ("lock", "statement"),
    [
        ("LOCK TABLE archive.ai_messages_p2024_10 IN ACCESS SHARE MODE", "RENAME TO"),
        # the ordinary month is filled and verified, the packed one detached and dropped
        ("LOCK TABLE archive.ai_messages IN EXCLUSIVE MODE", "ATTACH PARTITION"),
    ],
)
def test_a_kill_at_any_point_of_unpacking_leaves_the_packed_month_whole(
    pg_database: PgDatabase, lock: str, statement: str
) -> None:
    spec = table_spec(indexes=[THREAD_INDEX], archive=COMPRESS)
    seeded(pg_database, spec, rows=3000)
    with partition_db(pg_database) as db:
        for action in packs(db, spec):
            pack_month(db, action)
    before = fingerprint(pg_database, "archive.ai_messages_rows")
    october_packed = query(
        pg_database, f"SELECT md5(string_agg(p::text, '' ORDER BY p::text)) FROM {OCTOBER} p"
    )

    def unpack(db: PartitionDatabase) -> object:
        return unpack_month(
            db,
            plan_unpack(spec, db.observe(request_for([spec]))[spec.name], "ai_messages_p2024_10"),
        )

    with holding(pg_database, lock):
        kill_when_waiting(pg_database, unpack, statement)
    assert (
        query(pg_database, f"SELECT md5(string_agg(p::text, '' ORDER BY p::text)) FROM {OCTOBER} p")
        == october_packed
    )
    assert fingerprint(pg_database, "archive.ai_messages_rows") == before
    assert [n for n, _ in partitions_of(pg_database, "archive.ai_messages")] == [
        "ai_messages_p2024_12"
    ]


def test_sub_partitioned_months_go_through_archive_pack_unpack_export_and_drop(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    # The full example's shape (subpartitionBy user_id), with ranges small enough that the
    # test's users fill both sub-partitions and the DEFAULT one.
    spec = table_spec(
        indexes=[THREAD_INDEX],
        subpartitionBy={"column": "user_id", "rangeSize": 2000, "count": 2},
        archive=COMPRESS,
        retention={
            "dropAfterDays": 440,
            "exportTo": {"bucket": s3_bucket, "storageClass": "STANDARD"},
        },
    )
    create_messages_table(pg_database, with_default=True)
    insert_messages(pg_database, month_start(2024, 10), month_start(2026, 1), 4000)
    october = fingerprint(
        pg_database, "(SELECT * FROM ai_messages WHERE created_at < '2024-11-01') AS m"
    )
    with partition_db(pg_database) as db:
        outcome = reconcile_tables(db, [spec], ARCHIVE_TIME)
    assert not outcome.failures, outcome.failures
    leaves = query(
        pg_database,
        "SELECT relname FROM pg_partition_tree('archive.ai_messages_p2024_10') t"
        " JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf ORDER BY 1",
    )
    assert leaves == [
        ("ai_messages_p2024_10_s0",),
        ("ai_messages_p2024_10_s1",),
        ("ai_messages_p2024_10_sdefault",),
    ]
    assert all(
        query(pg_database, f"SELECT count(*) FROM archive.{leaf}")[0][0] > 0 for (leaf,) in leaves
    )
    with partition_db(pg_database) as db:
        for action in packs(db, spec, COMPRESS_TIME):
            pack_month(db, action)
    assert fingerprint(pg_database, OCTOBER_ROWS) == october
    assert query(pg_database, "SELECT to_regclass('archive.ai_messages_p2024_10_s0')") == [(None,)]

    # Unpacking restores the sub-partitions; packing again folds them back.
    with partition_db(pg_database) as db:
        unpack_month(
            db,
            plan_unpack(spec, db.observe(request_for([spec]))[spec.name], "ai_messages_p2024_10"),
        )
        assert query(pg_database, "SELECT count(*) FROM archive.ai_messages_p2024_10_s1") > [(0,)]
        assert fingerprint(pg_database, OCTOBER_ROWS) == october
        # Restored as the planner would have made it: a reconcile finds nothing to fix.
        db.writes.clear()
        reconcile_tables(db, [spec], COMPRESS_TIME)
        assert db.writes == []
        (again,) = [
            a for a in packs(db, spec, COMPRESS_TIME) if a.month.name == "ai_messages_p2024_10"
        ]
        pack_month(db, again)

    # Past retention, the packed month is exported as its original rows and dropped.
    env = jobs_env(pg_database, spec, stack)
    result = CliRunner().invoke(app, ["partitions", "export", "--now", NOW.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    assert "ai_messages_p2024_10" not in dict(
        partitions_of(pg_database, "archive.ai_messages_packed")
    )
    s3 = stack.s3_client()
    (key,) = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
        if o["Key"].endswith("ai_messages_p2024_10.csv.zst")
    ]
    body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    text = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    header = next(csv.reader(io.StringIO(text.decode())))
    assert header == [c for (c, _) in columns_of(pg_database, "public", "ai_messages")]
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE restored (LIKE ai_messages)")
        with conn.cursor().copy("COPY restored FROM STDIN (FORMAT csv, HEADER)") as copy:
            copy.write(text)
    assert fingerprint(pg_database, "restored") == october
