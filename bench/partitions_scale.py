"""One table of 10 years x 64 user ranges (7,680 sub-partitions): the cost of a reconcile that
finds nothing to do, and of the planner alone.

    .venv/bin/python bench/partitions_scale.py              # 120 months x 64 ranges
    .venv/bin/python bench/partitions_scale.py --months 24  # a smaller table, same measures

The table is the application's ai_messages with the example's thread index, partitioned by
month and each month by 64 ranges of user_id (plus each month's DEFAULT sub-partition), made by
the partitions reconciler itself (in steps of premake, the most one spec may ask for at once),
on a private server
(bench/pgbench_server.py; durability off: nothing about writes is measured here). Then, with
the whole table in place:

- no-op pass: `reconcile_tables` as a reconcile runs it, with `now` in the table's last months
  and premake 2 (the catalog query, the planner, the report), which must plan nothing and send
  no statement that changes anything;
- observe: the catalog's fingerprint, which is unchanged, so the trees of the last look are
  reused; and the same after a change (the cache emptied): the catalog query and the assembly
  of its rows into the observed tree;
- planner: `plan_table` on that observation (pure, no I/O).

Each is run --repeat times after one warm-up; the median and the worst are printed. Goal: the
no-op pass under 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable

import psycopg

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.postgres.catalog_cache import CATALOG_CACHE
from lokifi_storage.clients.postgres.partitions import open_partition_database
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.plan import plan_table
from lokifi_storage.reconcile.partitions import reconcile_tables
from messagegen import SCHEMA, THREAD_INDEX
from pgbench_server import bench_server, with_database

START = dt.datetime(2016, 1, 1, tzinfo=dt.UTC)
FAST = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "256MB",
    "max_locks_per_transaction": "1024",
}


def table_spec(premake: int, ranges: int) -> TableSpec:
    return TableSpec.model_validate(
        {
            "name": "ai_messages",
            "partitionBy": {"column": "created_at", "interval": "month"},
            "premake": premake,
            "subpartitionBy": {"column": "user_id", "rangeSize": 1_000_000, "count": ranges},
            "indexes": [THREAD_INDEX],
        }
    )


def month(index: int) -> dt.datetime:
    """The first instant of month `index` counted from START."""
    return START.replace(year=START.year + index // 12, month=index % 12 + 1)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def line(label: str, times: list[float]) -> str:
    return (
        f"  {label:<34} median {statistics.median(times) * 1000:8.1f} ms"
        f"   worst {max(times) * 1000:8.1f} ms   (n={len(times)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=120)
    parser.add_argument("--ranges", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # The spec admission allows premake x count up to 4096 sub-partitions at once, so the
    # table is built in steps, each making the next `step` months; the measured spec is the
    # everyday one: now in the last months, premake 2.
    step = max(1, min(args.months, 4096 // (args.ranges + 1)))
    now = month(args.months - 3)
    spec = table_spec(2, args.ranges)

    with bench_server(FAST) as admin_url:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE scale")
        url = with_database(admin_url, "scale")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)

        started = time.monotonic()
        made = 0
        with open_partition_database(url) as db:
            for first in range(0, args.months, step):
                ahead = min(step, args.months - first) - 1
                outcome = reconcile_tables(
                    db, [table_spec(max(1, ahead), args.ranges)], month(first), max_passes=1
                )
                made += len(outcome.done)
                if outcome.failures:
                    failures = {k: v.message for k, v in outcome.failures.items()}
                    raise SystemExit(f"building the table failed: {failures}")
        build = time.monotonic() - started

        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_partition_tree('ai_messages') WHERE isleaf"
            ).fetchone()
        leaves = int(row[0]) if row else 0

        with open_partition_database(url) as db:
            writes_before = len(db.writes)
            noop = timed(lambda: reconcile_tables(db, [spec], now), args.repeat)
            final = reconcile_tables(db, [spec], now)
            writes = len(db.writes) - writes_before
            observed = db.observe(request_for([spec]))
            observe = timed(lambda: db.observe(request_for([spec])), args.repeat)

            def observe_changed() -> object:
                CATALOG_CACHE.clear()  # as after any change to the table: the full query
                return db.observe(request_for([spec]))

            observe_full = timed(observe_changed, args.repeat)
            plan = timed(
                lambda: plan_table(spec, observed[spec.name], now, database="scale"),
                args.repeat,
            )
        summary = final.plans[spec.name].summary
        actions = sum(len(p.actions) for p in final.plans.values())

    print(
        f"ai_messages: {args.months} months x {args.ranges} user ranges"
        f" ({args.months * args.ranges} range sub-partitions)"
    )
    print(f"  built by the reconciler in {build:.0f}s ({made} actions); leaf partitions {leaves}")
    print(f"  status count {summary.count}; actions planned on the no-op pass: {actions}")
    print(f"  statements that change anything during the no-op passes: {writes}")
    print(line("no-op pass (observe + plan)", noop))
    print(line("observe, catalog unchanged", observe))
    print(line("observe, catalog changed (full query)", observe_full))
    print(line("planner (plan_table)", plan))


if __name__ == "__main__":
    main()
