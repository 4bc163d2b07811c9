"""Archival of one month of messages: the seed's INSERT..SELECT + DELETE against ours.

    .venv/bin/python bench/partitions_archive.py --rows 1000000

Both run on the same data in one private PostgreSQL 15 server (bench/pgbench_server.py: fsync
and full-page writes on, autovacuum off): the month is generated once, indexed with the seed's
two indexes, then the database is cloned (CREATE DATABASE ... TEMPLATE) so each side starts
from identical files after a CHECKPOINT.

- seed: in one transaction, `INSERT INTO archive.ai_messages SELECT ... WHERE created_at in the
  month` (a plain archive table carrying the same two indexes, so archived rows stay
  searchable) then `DELETE FROM ai_messages WHERE ...` (which leaves the emptied partition for
  VACUUM; that later cost is not counted here).
- ours: the partitions reconciler with `archive: {afterDays: 365}`: create the archive table,
  then DETACH + SET SCHEMA + ATTACH in one short transaction. The month's partition was made
  by the operator ahead of time, born with a valid bounds CHECK, so the ATTACH scans nothing.
- ours, foreign partition: the same on a third clone where that CHECK is dropped, as for a
  partition someone else created: the reconciler first adds it NOT VALID and VALIDATEs it (a
  read-only scan that blocks neither reads nor writes), then does the same transaction.

Reported: wall time and WAL bytes (pg_current_wal_lsn difference) for each, their ratios, and
how long our ACCESS EXCLUSIVE transaction on the parent lasted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

import psycopg

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.postgres.partitions import PartitionDatabase, open_partition_database
from lokifi_storage.domain.partitions.statements import Step
from lokifi_storage.reconcile.partitions import reconcile_tables
from messagegen import SCHEMA, SEARCH_INDEX, THREAD_INDEX, insert_params, insert_sql, load_pool
from pgbench_server import bench_server, with_database

NOW = dt.datetime(2025, 11, 15, tzinfo=dt.UTC)
MONTH = (dt.datetime(2024, 10, 1, tzinfo=dt.UTC), dt.datetime(2024, 11, 1, tzinfo=dt.UTC))


def spec(indexes: list[dict[str, Any]], archive: bool) -> TableSpec:
    body: dict[str, Any] = {
        "name": "ai_messages",
        "partitionBy": {"column": "created_at", "interval": "month"},
        "premake": 1,
        "indexes": indexes,
    }
    if archive:
        body["archive"] = {"afterDays": 365, "schema": "archive"}
    return TableSpec.model_validate(body)


def wal_lsn(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wal_bytes(conn: psycopg.Connection[Any], start: str) -> int:
    row = conn.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (start,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def prepare(url: str, rows: int, indexes: list[dict[str, Any]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    # The operator made the partitions ahead of time: October 2024 .. November 2025.
    ahead = spec([], archive=False).model_copy(update={"premake": 13})
    with open_partition_database(url) as db:
        outcome = reconcile_tables(db, [ahead], MONTH[0] + dt.timedelta(days=14))
        assert not outcome.failures, outcome.failures
    with psycopg.connect(url, autocommit=True) as conn:
        size = load_pool(conn)
        started = time.monotonic()
        conn.execute(insert_sql(), insert_params(*MONTH, rows, pool_size=size))
        live = (dt.datetime(2025, 11, 1, tzinfo=dt.UTC), NOW)
        conn.execute(insert_sql(), insert_params(*live, rows // 10, first=rows + 1, pool_size=size))
        print(f"generated {rows} + {rows // 10} rows in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    with open_partition_database(url) as db:
        outcome = reconcile_tables(db, [spec(indexes, archive=False)], NOW)
        assert not outcome.failures, outcome.failures
    print(f"built {len(indexes)} indexes per partition in {time.monotonic() - started:.0f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def run_seed(url: str) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA archive")
        conn.execute(
            "CREATE TABLE archive.ai_messages"
            " (LIKE public.ai_messages INCLUDING DEFAULTS INCLUDING INDEXES)"
        )
        conn.execute("CHECKPOINT")
        start = wal_lsn(conn)
        started = time.monotonic()
        with conn.transaction():
            conn.execute(
                "INSERT INTO archive.ai_messages SELECT * FROM ai_messages"
                " WHERE created_at >= %s AND created_at < %s",
                MONTH,
            )
            inserted = time.monotonic()
            conn.execute(
                "DELETE FROM ai_messages WHERE created_at >= %s AND created_at < %s", MONTH
            )
        seconds = time.monotonic() - started
        wal = wal_bytes(conn, start)
        row = conn.execute("SELECT count(*) FROM archive.ai_messages").fetchone()
        assert row is not None
        return {
            "seconds": seconds,
            "insert_seconds": inserted - started,
            "wal": float(wal),
            "rows": float(row[0]),
        }


def run_ours(url: str, indexes: list[dict[str, Any]]) -> dict[str, float]:
    timings: list[tuple[str, float]] = []
    original = PartitionDatabase.run_step

    def timed(self: PartitionDatabase, step: Step, what: str) -> None:
        started = time.monotonic()
        original(self, step, what)
        first = step.statements[0]
        label = first.as_string(None) if hasattr(first, "as_string") else str(first)
        timings.append((label.split(" PARTITION ")[0][:60], time.monotonic() - started))

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        start = wal_lsn(conn)
        PartitionDatabase.run_step = timed  # type: ignore[method-assign]
        try:
            started = time.monotonic()
            with open_partition_database(url) as db:
                outcome = reconcile_tables(db, [spec(indexes, archive=True)], NOW)
            seconds = time.monotonic() - started
        finally:
            PartitionDatabase.run_step = original  # type: ignore[method-assign]
        assert not outcome.failures, outcome.failures
        assert any(a.startswith("archive public.ai_messages_p2024_10") for a in outcome.done)
        wal = wal_bytes(conn, start)
        row = conn.execute("SELECT count(*) FROM archive.ai_messages").fetchone()
        assert row is not None
    for label, took in timings:
        print(f"  ours step {took * 1000:9.1f} ms  {label}")
    detach = next(took for label, took in timings if "DETACH" in label)
    return {"seconds": seconds, "wal": float(wal), "rows": float(row[0]), "exclusive": detach}


def drop_check(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE ai_messages_p2024_10 DROP CONSTRAINT lokifi_bounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Messages in the month.")
    parser.add_argument(
        "--indexes",
        choices=["both", "thread"],
        default="both",
        help="The seed's two indexes (default) or only the thread-history one.",
    )
    args = parser.parse_args()
    indexes = [THREAD_INDEX, SEARCH_INDEX] if args.indexes == "both" else [THREAD_INDEX]
    with bench_server() as server:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("CREATE DATABASE archive_ours")
        prepare(with_database(server, "archive_ours"), args.rows, indexes)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("CREATE DATABASE archive_seed TEMPLATE archive_ours")
            conn.execute("CREATE DATABASE archive_foreign TEMPLATE archive_ours")
        drop_check(with_database(server, "archive_foreign"))
        seed = run_seed(with_database(server, "archive_seed"))
        print("ours (partition made by the operator):")
        ours = run_ours(with_database(server, "archive_ours"), indexes)
        print("ours (foreign partition, CHECK added and validated first):")
        foreign = run_ours(with_database(server, "archive_foreign"), indexes)
    assert seed["rows"] == ours["rows"] == foreign["rows"] == args.rows, (seed, ours, foreign)
    mib = 1024 * 1024
    print(f"rows archived:            {args.rows}")
    print(
        f"seed INSERT..SELECT+DELETE: {seed['seconds']:8.2f} s  "
        f"(insert {seed['insert_seconds']:.2f} s)  WAL {seed['wal'] / mib:10.1f} MiB"
    )
    for name, run in (("ours", ours), ("ours, foreign partition", foreign)):
        print(
            f"{name + ':':27s} {run['seconds']:8.2f} s  WAL {run['wal'] / mib:10.3f} MiB"
            f"  (ACCESS EXCLUSIVE on the parent for {run['exclusive'] * 1000:.1f} ms)"
        )
        print(
            f"  ratios seed/{name}: time {seed['seconds'] / run['seconds']:.0f}x, "
            f"WAL {seed['wal'] / run['wal']:.0f}x, "
            f"seed time / our exclusive-lock time {seed['seconds'] / run['exclusive']:.0f}x"
        )


if __name__ == "__main__":
    main()
