"""The seed's "10x faster queries" claim: thread history on a partitioned, indexed table.

    .venv/bin/python bench/partitions_query.py --rows 10000000

The query is the chat UI's: one thread's newest 50 messages,
`SELECT * FROM <t> WHERE user_id = $1 AND thread_id = $2 ORDER BY created_at DESC LIMIT 50`,
for --queries (user, thread) pairs sampled from the data. The same rows (12 months of realistic
messages, bench/messagegen.py) are loaded into:

- plain:              one table, no index (what the seed compares against);
- plain + index:      one table with the seed's (user_id, thread_id, created_at DESC) index;
- partitioned:        monthly partitions made by the partitions reconciler, the same index
                      built per partition concurrently and attached.

The third variant is there so the ratio is honest about where the speed comes from: the index,
not the partitioning (a query that does not filter on created_at visits every partition). Each
query is run once to warm the cache and then timed; medians are reported. Durability is off on
this private server (nothing about writes is measured here) so loading fits the time budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.postgres.partitions import open_partition_database
from lokifi_storage.reconcile.partitions import reconcile_tables
from messagegen import SCHEMA, THREAD_INDEX, insert_params, insert_sql, load_pool
from pgbench_server import bench_server, with_database

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2025, 1, 15, tzinfo=dt.UTC)
QUERY = "SELECT * FROM {} WHERE user_id = %s AND thread_id = %s ORDER BY created_at DESC LIMIT 50"
FAST_LOAD = {
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def table_spec(indexes: list[dict[str, Any]]) -> TableSpec:
    return TableSpec.model_validate(
        {
            "name": "ai_messages",
            "partitionBy": {"column": "created_at", "interval": "month"},
            "premake": 11,
            "indexes": indexes,
        }
    )


def step(label: str, started: float) -> float:
    now = time.monotonic()
    print(f"  {label}: {now - started:.0f} s", flush=True)
    return now


def load(url: str, rows: int, plain_index: bool) -> None:
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("CREATE TABLE ai_messages_plain (LIKE ai_messages INCLUDING DEFAULTS)")
        size = load_pool(conn)
    with open_partition_database(url) as db:
        outcome = reconcile_tables(db, [table_spec([])], NOW)  # Jan..Dec 2025 and DEFAULT
        assert not outcome.failures, outcome.failures
    with psycopg.connect(url, autocommit=True) as conn:
        batch = 1_000_000
        for first in range(1, rows + 1, batch):
            n = min(batch, rows - first + 1)
            lo = START + (END - START) * ((first - 1) / rows)
            hi = START + (END - START) * ((first - 1 + n) / rows)
            conn.execute(insert_sql(), insert_params(lo, hi, n, first=first, pool_size=size))
        started = step(f"generated {rows} rows into the partitioned table", started)
        conn.execute("INSERT INTO ai_messages_plain SELECT * FROM ai_messages")
        started = step("copied them into the plain table", started)
    with open_partition_database(url) as db:
        outcome = reconcile_tables(db, [table_spec([THREAD_INDEX])], NOW)
        assert not outcome.failures, outcome.failures
    started = step("built the index per partition (concurrently) and attached it", started)
    with psycopg.connect(url, autocommit=True) as conn:
        if plain_index:
            conn.execute(
                "CREATE TABLE ai_messages_plain_indexed AS SELECT * FROM ai_messages_plain"
            )
            conn.execute(
                "CREATE INDEX ON ai_messages_plain_indexed (user_id, thread_id, created_at DESC)"
            )
            started = step("copied and indexed the plain+index table", started)
        conn.execute("VACUUM ANALYZE")
        step("VACUUM ANALYZE", started)


def timings(conn: psycopg.Connection[Any], table: str, pairs: list[tuple[int, int]]) -> list[float]:
    query = sql.SQL(QUERY).format(sql.Identifier(table))
    out = []
    for user_id, thread_id in pairs:
        conn.execute(query, (user_id, thread_id)).fetchall()  # warm
        started = time.perf_counter()
        rows = conn.execute(query, (user_id, thread_id)).fetchall()
        out.append(time.perf_counter() - started)
        assert rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=50, help="Pairs for indexed tables.")
    parser.add_argument(
        "--unindexed-queries", type=int, default=5, help="Pairs for the unindexed table."
    )
    parser.add_argument("--no-plain-index", action="store_true", help="Skip plain + index.")
    args = parser.parse_args()
    with bench_server(FAST_LOAD) as server:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_query")
        url = with_database(server, "bench_query")
        load(url, args.rows, not args.no_plain_index)
        with psycopg.connect(url, autocommit=True) as conn:
            pairs = [
                (int(u), int(t))
                for u, t in conn.execute(
                    "SELECT user_id, thread_id FROM ai_messages_plain"
                    " TABLESAMPLE SYSTEM (1) REPEATABLE (42) LIMIT %s",
                    (args.queries,),
                ).fetchall()
            ]
            results = {
                "partitioned+indexed": timings(conn, "ai_messages", pairs),
                "plain, no index": timings(
                    conn, "ai_messages_plain", pairs[: args.unindexed_queries]
                ),
            }
            if not args.no_plain_index:
                results["plain+indexed"] = timings(conn, "ai_messages_plain_indexed", pairs)
            sizes = conn.execute(
                "SELECT (SELECT sum(pg_total_relation_size(relid)) FROM"
                " pg_partition_tree('ai_messages')), pg_total_relation_size('ai_messages_plain')"
            ).fetchone()
            explain = conn.execute(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                + QUERY.format("ai_messages"),
                pairs[0],
            ).fetchall()
    medians = {name: statistics.median(ts) for name, ts in results.items()}
    assert sizes is not None
    print(
        f"rows: {args.rows}; partitioned {sizes[0] / 2**30:.2f} GiB,"
        f" plain {sizes[1] / 2**30:.2f} GiB"
    )
    for name, ts in results.items():
        print(f"{name:22s} median {medians[name] * 1000:10.2f} ms over {len(ts)} queries")
    base = medians["partitioned+indexed"]
    print(f"ratio plain-unindexed / partitioned+indexed: {medians['plain, no index'] / base:.0f}x")
    if "plain+indexed" in medians:
        print(
            f"ratio plain+indexed / partitioned+indexed:   {medians['plain+indexed'] / base:.2f}x"
        )
    print("plan (partitioned+indexed):")
    for (line,) in explain[:8]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
