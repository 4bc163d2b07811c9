"""Partition maintenance: ours against pg_partman 4.7 on the same PostgreSQL 15 server.

    .venv/bin/python bench/partitions_partman.py --months 120 --runs 5 --rounds 3

Two databases per round on one private server (bench/pgbench_server.py), each with the seed's
empty `ai_messages` table and its two indexes (user/thread/time B-tree, full-text GIN):

- create: 10 years of monthly partitions (the current month and 119 ahead) plus a DEFAULT
  partition. Ours: one reconcile with `premake: 119`. pg_partman: `partman.create_parent(...,
  'native', 'monthly', p_premake := 119, p_start_partition := <this month>)`, with the indexes
  on the parent so PostgreSQL puts them on every partition.
- no-op maintenance: the same again when nothing is due. Ours: a reconcile (its statements are
  counted: only reads); pg_partman: `partman.run_maintenance('public.ai_messages')`.

The machine is shared, so the two sides take turns: within a round the side that creates first
alternates, and the no-op runs alternate one of ours, one of pg_partman's. Times are on an open
connection (connecting is not counted for either); no-op times are the median of --runs runs.
Ratios are pg_partman / ours (above 1: ours is faster), per round and their median. While each
side creates its partitions, a second session keeps reading the table (`SELECT count(*) FROM
ai_messages` every 5 ms) and the longest a read took is reported: that is what the application
feels.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg

import lokifi_storage.clients.postgres.partition_pair as partition_pair
from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.postgres.partitions import open_partition_database
from lokifi_storage.reconcile.partitions import reconcile_tables
from messagegen import SCHEMA, SEARCH_INDEX, THREAD_INDEX
from pgbench_server import bench_server, with_database

SEED_INDEXES = """
CREATE INDEX idx_ai_messages_user_thread_time ON ai_messages (user_id, thread_id, created_at DESC);
CREATE INDEX idx_ai_messages_content_search ON ai_messages
    USING gin (to_tsvector('english'::regconfig, content));
"""


def count_partitions(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ai_messages'::regclass"
        ).fetchone()
        assert row is not None
        return int(row[0])


def count_indexes(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indrelid"
            " WHERE i.inhparent = 'ai_messages'::regclass AND x.indisvalid"
        ).fetchone()
        assert row is not None
        return int(row[0])


@contextmanager
def reader_stalls(url: str) -> Iterator[list[float]]:
    """Read the table in a loop meanwhile; yields the list the read latencies go into."""
    latencies: list[float] = []
    stop = threading.Event()

    def read() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                started = time.perf_counter()
                conn.execute("SELECT count(*) FROM ai_messages").fetchone()
                latencies.append(time.perf_counter() - started)
                time.sleep(0.005)

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.1)
    try:
        yield latencies
    finally:
        time.sleep(0.1)
        stop.set()
        thread.join()


def table_spec(premake: int) -> TableSpec:
    return TableSpec.model_validate(
        {
            "name": "ai_messages",
            "partitionBy": {"column": "created_at", "interval": "month"},
            "premake": premake,
            "indexes": [THREAD_INDEX, SEARCH_INDEX],
        }
    )


@contextmanager
def ours(url: str, premake: int, now: dt.datetime) -> Iterator[dict[str, Any]]:
    """Create with our reconciler; yields the figures and a no-op pass to time."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    table = table_spec(premake)
    with open_partition_database(url) as db:
        with reader_stalls(url) as reads:
            started = time.monotonic()
            outcome = reconcile_tables(db, [table], now)
            create = time.monotonic() - started
        assert not outcome.failures, outcome.failures
        create_writes = len(db.writes)

        def noop() -> float:
            before = len(db.writes)
            started = time.monotonic()
            again = reconcile_tables(db, [table], now)
            took = time.monotonic() - started
            assert len(db.writes) == before
            assert again.done == []
            return took

        yield {
            "create": create,
            "stall": max(reads),
            "writes": create_writes,
            "partitions": count_partitions(url),
            "indexes": count_indexes(url),
            "noop": noop,
        }


def partman_table(conn: psycopg.Connection[Any]) -> None:
    """The seed's table and indexes, not partitioned yet, beside pg_partman in its schema."""
    conn.execute(SCHEMA)
    conn.execute(SEED_INDEXES)
    conn.execute("CREATE SCHEMA partman")
    conn.execute("CREATE EXTENSION pg_partman SCHEMA partman")


@contextmanager
def partman(url: str, premake: int, now: dt.datetime) -> Iterator[dict[str, Any]]:
    """Create with pg_partman; yields the figures and a no-op maintenance to time."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(url, autocommit=True) as conn:
        partman_table(conn)
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_partman'"
        ).fetchone()
        version = str(row[0]) if row else "?"
        with reader_stalls(url) as reads:
            started = time.monotonic()
            conn.execute(
                "SELECT partman.create_parent('public.ai_messages', 'created_at', 'native',"
                " 'monthly', p_premake := %s, p_start_partition := %s)",
                (premake, start.strftime("%Y-%m-%d %H:%M:%S+00")),
            )
            create = time.monotonic() - started

        def noop() -> float:
            started = time.monotonic()
            conn.execute("SELECT partman.run_maintenance('public.ai_messages')")
            return time.monotonic() - started

        yield {
            "create": create,
            "stall": max(reads),
            "version": version,
            "partitions": count_partitions(url),
            "indexes": count_indexes(url),
            "noop": noop,
        }


def one_round(
    server: str, round_no: int, months: int, runs: int, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides on fresh databases; the side that creates first alternates by round."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE bench_ours_{round_no}")
        conn.execute(f"CREATE DATABASE bench_partman_{round_no}")
    sides = [
        lambda: ours(with_database(server, f"bench_ours_{round_no}"), months - 1, now),
        lambda: partman(with_database(server, f"bench_partman_{round_no}"), months - 1, now),
    ]
    order = [0, 1] if round_no % 2 else [1, 0]
    with ExitStack() as stack:
        figures: list[dict[str, Any]] = [{}, {}]
        for i in order:
            figures[i] = stack.enter_context(sides[i]())
        noops: list[list[float]] = [[], []]
        for _ in range(runs):
            for i in order:
                noops[i].append(figures[i]["noop"]())
        for i in (0, 1):
            figures[i]["noop"] = statistics.median(noops[i])
    return figures[0], figures[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--months", type=int, default=120, help="Monthly partitions to make.")
    parser.add_argument("--runs", type=int, default=5, help="No-op maintenance runs (median).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds, fresh databases each.")
    parser.add_argument(
        "--sessions",
        type=int,
        default=partition_pair.MONTH_SESSIONS,
        help="Sessions ours makes new months on at most (the operator's default).",
    )
    args = parser.parse_args()
    partition_pair.MONTH_SESSIONS = args.sessions
    now = dt.datetime.now(dt.UTC)
    ratios: dict[str, list[float]] = {"create": [], "noop": [], "stall": []}
    with bench_server() as server:
        for round_no in range(1, args.rounds + 1):
            mine, theirs = one_round(server, round_no, args.months, args.runs, now)
            first = "ours" if round_no % 2 else "pg_partman"
            print(
                f"round {round_no} ({first} created first); pg_partman {theirs['version']}; "
                f"{args.months} monthly partitions + DEFAULT, 2 indexes; ours on up to "
                f"{args.sessions} sessions; load {os.getloadavg()[0]:.2f}"
            )
            print(
                f"  create   ours {mine['create']:7.3f} s ({mine['partitions']} partitions, "
                f"{mine['indexes']} valid partition indexes, {mine['writes']} statements)   "
                f"pg_partman {theirs['create']:7.3f} s ({theirs['partitions']} partitions, "
                f"{theirs['indexes']} valid partition indexes)"
            )
            print(
                f"  no-op    ours {mine['noop'] * 1000:7.1f} ms (0 statements that change "
                f"anything)   pg_partman {theirs['noop'] * 1000:7.1f} ms"
            )
            print(
                f"  longest read of the table while partitions were made: ours "
                f"{mine['stall'] * 1000:.1f} ms, pg_partman {theirs['stall'] * 1000:.1f} ms"
            )
            for key in ratios:
                ratios[key].append(theirs[key] / mine[key])
            print(
                f"  ratios (pg_partman/ours): create {ratios['create'][-1]:.2f}x, "
                f"no-op {ratios['noop'][-1]:.2f}x, longest read stall {ratios['stall'][-1]:.1f}x",
                flush=True,
            )
    print(
        f"median ratios over {args.rounds} rounds (pg_partman/ours): "
        f"create {statistics.median(ratios['create']):.2f}x, "
        f"no-op {statistics.median(ratios['noop']):.2f}x, "
        f"longest read stall {statistics.median(ratios['stall']):.1f}x"
    )


if __name__ == "__main__":
    main()
