"""Where the time of making 120 months goes: ours and pg_partman 4.7 on one private server.

    .venv/bin/python bench/partitions_profile.py --months 120 --runs 3
    .venv/bin/python bench/partitions_profile.py --dir /dev/shm    # the server's files in tmpfs

The same create as bench/partitions_partman.py (a fresh database per run, the seed's table and
indexes, a reader every 5 ms), taken apart instead of timed side by side:

- wall time, and the CPU of the server sessions that made the partitions, split into user and
  kernel time (/proc/<pid>/stat of each backend, read before and after: this script runs on
  the server's machine); the reader's CPU on its own line; for ours, the CPU of this process
  while it made them (the operator's code, and also the Python threads of the reader and of
  the sampler below, which run in this process during both sides' create);
- what those sessions were doing, sampled from pg_stat_activity every 2 ms: on CPU (or waiting
  for one: PostgreSQL cannot tell), waiting for the client, for a lock, or for I/O such as
  `DataFileImmediateSync` (the fsync that ends every B-tree build in PostgreSQL 15).

`--sessions N` sets how many sessions ours uses (clients/postgres/partition_pair.py); runs
alternate ours and pg_partman. `--dir` puts the server's data directory under another parent
(the default is the system's temporary directory), for instance on tmpfs, where creating and
fsyncing files costs next to nothing: what is left there is CPU.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

import lokifi_storage.clients.postgres.partition_pair as partition_pair
from lokifi_storage.clients.postgres.partitions import open_partition_database
from lokifi_storage.reconcile.partitions import reconcile_tables
from messagegen import SCHEMA
from partitions_partman import partman_table, reader_stalls, table_spec
from pgbench_server import bench_server, with_database

TICK = os.sysconf("SC_CLK_TCK")
SAMPLER = "profile-sampler"


def cpu_ticks(pid: int) -> tuple[int, int]:
    """User and kernel CPU of a process so far, in clock ticks (0, 0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    return int(fields[11]), int(fields[12])


def backends(url: str) -> dict[int, str]:
    """The database's client backends and their application names."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(pid): str(app) for pid, app in rows}


@contextmanager
def sampled(url: str, skip: set[int]) -> Iterator[collections.Counter[str]]:
    """Count what the database's other sessions are doing every 2 ms meanwhile."""
    counts: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(url, autocommit=True, application_name=SAMPLER) as conn:
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                ).fetchall()
                for pid, state, kind, event in rows:
                    if pid in skip or state is None:
                        continue
                    if state == "idle" and kind == "Client":
                        counts["idle: waiting for the client"] += 1
                    elif state == "active":
                        counts[f"{kind}: {event}" if kind else "on CPU (or waiting for one)"] += 1
                time.sleep(0.002)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join()


def reader_pids(url: str, known: set[int]) -> set[int]:
    return {pid for pid, app in backends(url).items() if pid not in known and app != SAMPLER}


def ours(url: str, months: int, now: dt.datetime) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    table = table_spec(months - 1)
    with open_partition_database(url) as db:
        mine = db.conn.info.backend_pid
        with reader_stalls(url):
            time.sleep(0.05)
            readers = reader_pids(url, {mine})
            before = {pid: cpu_ticks(pid) for pid in (mine, *readers)}
            with sampled(url, readers) as counts:
                started, client = time.monotonic(), time.process_time()
                outcome = reconcile_tables(db, [table], now)
                wall, client = time.monotonic() - started, time.process_time() - client
            workers = {
                pid for pid, app in backends(url).items() if pid not in readers and app != SAMPLER
            }
            after = {pid: cpu_ticks(pid) for pid in (*workers, *readers)}
        assert not outcome.failures, outcome.failures
    return figures(wall, workers, readers, before, after, counts, client)


def partman(url: str, months: int, now: dt.datetime) -> dict[str, Any]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(url, autocommit=True) as conn:
        partman_table(conn)
        mine = conn.info.backend_pid
        with reader_stalls(url):
            time.sleep(0.05)
            readers = reader_pids(url, {mine})
            before = {pid: cpu_ticks(pid) for pid in (mine, *readers)}
            with sampled(url, readers) as counts:
                started = time.monotonic()
                conn.execute(
                    "SELECT partman.create_parent('public.ai_messages', 'created_at', 'native',"
                    " 'monthly', p_premake := %s, p_start_partition := %s)",
                    (months - 1, start.strftime("%Y-%m-%d %H:%M:%S+00")),
                )
                wall = time.monotonic() - started
            after = {pid: cpu_ticks(pid) for pid in (mine, *readers)}
    return figures(wall, {mine}, readers, before, after, counts, None)


def figures(
    wall: float,
    workers: set[int],
    readers: set[int],
    before: dict[int, tuple[int, int]],
    after: dict[int, tuple[int, int]],
    counts: collections.Counter[str],
    client: float | None,
) -> dict[str, Any]:
    def spent(pids: set[int]) -> tuple[float, float]:
        user = sum(after[p][0] - before.get(p, (0, 0))[0] for p in pids if p in after)
        kernel = sum(after[p][1] - before.get(p, (0, 0))[1] for p in pids if p in after)
        return user / TICK, kernel / TICK

    user, kernel = spent(workers)
    reader_user, reader_kernel = spent(readers)
    return {
        "wall": wall,
        "sessions": len(workers),
        "user": user,
        "kernel": kernel,
        "reader": reader_user + reader_kernel,
        "client": client,
        "waits": counts,
    }


def show(side: str, f: dict[str, Any]) -> None:
    client = f" client {f['client']:.3f} s," if f["client"] is not None else ""
    print(
        f"  {side:10s} wall {f['wall']:.3f} s; server CPU {f['user'] + f['kernel']:.3f} s "
        f"(user {f['user']:.2f}, kernel {f['kernel']:.2f}) on {f['sessions']} session(s);"
        f"{client} reader {f['reader']:.3f} s"
    )
    total = sum(f["waits"].values()) or 1
    shares = ", ".join(f"{k} {v / total:.0%}" for k, v in f["waits"].most_common(5))
    print(f"  {'':10s} samples: {shares}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--months", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3, help="Runs of each side, in turns.")
    parser.add_argument("--sessions", type=int, default=partition_pair.MONTH_SESSIONS)
    parser.add_argument("--dir", default=None, help="Parent directory of the server's data.")
    args = parser.parse_args()
    partition_pair.MONTH_SESSIONS = args.sessions
    if args.dir:
        tempfile.tempdir = args.dir
    now = dt.datetime.now(dt.UTC)
    walls: dict[str, list[float]] = {"ours": [], "pg_partman": []}
    with bench_server() as server:
        for run in range(1, args.runs + 1):
            print(f"run {run} (load {os.getloadavg()[0]:.2f}, ours on {args.sessions} sessions)")
            for side, make in (("ours", ours), ("pg_partman", partman)):
                name = f"profile_{side}_{run}"
                with psycopg.connect(server, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {name}")
                f = make(with_database(server, name), args.months, now)
                walls[side].append(f["wall"])
                show(side, f)
    print(
        f"median wall: ours {statistics.median(walls['ours']):.3f} s, "
        f"pg_partman {statistics.median(walls['pg_partman']):.3f} s"
    )


if __name__ == "__main__":
    main()
