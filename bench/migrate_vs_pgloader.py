"""SQLite -> PostgreSQL: `lokifi-storage migrate sqlite` against pgloader, side by side.

    .venv/bin/python bench/migrate_vs_pgloader.py --messages 5000000

One generated SQLite file shaped like the app's (`users`, `ai_threads`, `ai_messages` over three
years, chat-like text from bench/messagegen.py, a JSON metadata column, ISO timestamps, the
foreign keys and the thread index), cached under ~/.cache/lokifi-storage/bench-migrate. It is
loaded three times, each into a fresh database of one private PostgreSQL 15 server
(bench/pgbench_server.py, fsync on):

- pgloader (Debian's `pgloader` package, installed with apt-get when missing) with its defaults
  (plain tables, indexes and foreign keys rebuilt after the data, sequences reset) except
  `prefetch rows = 10000`: with the default 100 000 it dies with SBCL's heap exhausted;
- ours with verification on (the default): `ai_messages` monthly partitions with user-range
  sub-partitions and the seed's index, old months in the archive, per-table count and digest;
- ours with --no-verify;
- with `--baseline DIR` (a checkout of an earlier commit, e.g. `git worktree add DIR <commit>`),
  that commit's command too, verification on: its `operator/` first on PYTHONPATH, the rest
  (interpreter, dependencies) the same, for a before/after on the same file and server.

With `--python`, ours once more with LOKIFI_MIGRATE_COMPILED=0 (the Python converters only,
same commit); with `--rounds N`, every loader N times, the order reversed every other round
(the machine's load moves), and the median reported. Each run prints the 1-minute load average
at its start and end.

Reported: wall time from process start to exit, rows/s over all three tables, the peak RSS of
the loading process (os.wait4's ru_maxrss; the server is not counted) and ratios to pgloader.
The database URL reaches pgloader through a command file (mode 0600), never its command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

from messagegen import text_pool
from pgbench_server import bench_server, with_database

CACHE = Path.home() / ".cache" / "lokifi-storage" / "bench-migrate"
CLI = Path(sys.executable).with_name("lokifi-storage")
PGLOADER_PREFETCH_ROWS = 10_000
START = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
YEARS = 3

SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    is_active BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE TABLE ai_threads (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    title TEXT NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE TABLE ai_messages (
    id INTEGER PRIMARY KEY,
    thread_id INTEGER NOT NULL REFERENCES ai_threads(id),
    user_id INTEGER NOT NULL,
    role VARCHAR(20) NOT NULL,
    content TEXT NOT NULL,
    tokens INTEGER,
    metadata JSON,
    created_at DATETIME NOT NULL
);
CREATE INDEX ix_ai_messages_thread ON ai_messages (thread_id);
"""

RESOURCE = {
    "apiVersion": "storage.lokifi.ai/v1alpha1",
    "kind": "LokifiStorage",
    "metadata": {"name": "bench"},
    "spec": {
        "postgres": {
            "primary": {"secretRef": {"name": "db", "key": "url"}},
            "tables": [
                {
                    "name": "ai_messages",
                    "partitionBy": {"column": "created_at", "interval": "month"},
                    "subpartitionBy": {"column": "user_id", "rangeSize": 12500, "count": 4},
                    "indexes": [
                        {
                            "name": "idx_ai_messages_user_thread_time",
                            "columns": ["user_id", "thread_id", "created_at DESC"],
                        }
                    ],
                    "archive": {"afterDays": 365, "schema": "archive"},
                }
            ],
        }
    },
}


def _stamp(instant: dt.datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%S")


def generate(path: Path, messages: int, users: int, threads: int) -> None:
    """Write the file; eight messages per thread in a row, evenly spread over three years."""
    tmp = path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    conn.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + SCHEMA)
    rng = random.Random(16)
    created = _stamp(START)
    conn.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        ((i, f"user{i}@example.org", i % 7 != 0, created) for i in range(1, users + 1)),
    )
    conn.executemany(
        "INSERT INTO ai_threads VALUES (?, ?, ?, ?)",
        ((i, 1 + (i * 7919) % users, f"thread {i}", created) for i in range(1, threads + 1)),
    )
    pool = text_pool()
    span = YEARS * 365 * 86400
    base = START.timestamp()
    models = ["lokifi-7b", "lokifi-70b", "gpt-4o-mini"]

    def rows() -> object:
        for i in range(1, messages + 1):
            thread = 1 + ((i - 1) // 8) % threads
            instant = dt.datetime.fromtimestamp(base + span * (i - 1) / messages, dt.UTC)
            yield (
                i,
                thread,
                1 + (thread * 7919) % users,
                "user" if i % 2 else "assistant",
                pool[(i * 2 + i % 2) % len(pool)],
                10 + i % 900,
                json.dumps({"model": models[i % 3], "latency_ms": rng.randint(50, 3000)}),
                _stamp(instant),
            )

    conn.executemany("INSERT INTO ai_messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())  # type: ignore[arg-type]
    conn.commit()
    conn.close()
    tmp.rename(path)


def ensure_pgloader() -> str:
    found = shutil.which("pgloader")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", "pgloader"], check=True, env=env)
    found = shutil.which("pgloader")
    assert found, "pgloader not found after apt-get install"
    return found


def run_measured(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, int, int]:
    """Wall seconds, exit status and peak RSS (KiB) of one process."""
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - started, process.returncode, int(usage.ru_maxrss)


def count_rows(url: str, tables: list[str]) -> int:
    with psycopg.connect(url) as conn:
        return sum(
            int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in tables
        )


def _median(runs: list[tuple[float, int, int]]) -> tuple[float, int, int]:
    """The run of median time (the lower of the two middle ones for an even count)."""
    return sorted(runs)[(len(runs) - 1) // 2]


def _run_one(
    key: str,
    server: str,
    work: Path,
    source: Path,
    manifest: Path,
    total: int,
    pgloader: str,
    args: argparse.Namespace,
) -> tuple[float, int, int]:
    """One loader into a fresh database: (seconds, rows loaded, peak RSS in KiB)."""
    database = f"bench_{key}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    url = with_database(server, database)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work)}
    if key == "pgloader":
        command = work / "load.pgl"
        command.write_text(
            f"LOAD DATABASE FROM sqlite://{source}\n INTO {url}\n"
            " WITH include drop, create tables, create indexes, reset sequences,\n"
            # The default (100 000 rows in flight) exhausts SBCL's 1 GiB heap on
            # these ~700-byte rows ("Heap exhausted, game over").
            f"      prefetch rows = {PGLOADER_PREFETCH_ROWS};\n"
        )
        command.chmod(0o600)
        argv = [pgloader, "--no-ssl-cert-verification", str(command)]
    else:
        env["LOKIFI_PRIMARY_URL"] = url
        if key == "baseline":
            env["PYTHONPATH"] = str(args.baseline.resolve() / "operator")
        if key == "python":
            env["LOKIFI_MIGRATE_COMPILED"] = "0"
        argv = [str(CLI), "migrate", "sqlite", str(source), "-f", str(manifest)]
        if key == "noverify":
            argv.append("--no-verify")
    load = os.getloadavg()[0]
    seconds, code, rss = run_measured(argv, env, work / f"{key}.log")
    print(
        f"{key}: exit {code} in {seconds:.1f}s, peak RSS {rss / 1024:.0f} MiB "
        f"(load average {load:.1f} at its start, {os.getloadavg()[0]:.1f} at its end)"
    )
    if code != 0:
        print((work / f"{key}.log").read_text()[-3000:])
        raise SystemExit(f"{key} failed")
    tables = ["users", "ai_threads", "ai_messages"]
    if key != "pgloader":
        tables.append("archive.ai_messages")
    loaded = count_rows(url, tables)
    assert loaded == total, f"{key} loaded {loaded} rows of {total}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {database}")
    return seconds, loaded, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=625_000)
    parser.add_argument(
        "--skip", default="", help="comma list of runs to skip: pgloader,verify,noverify"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every loader this many times, in alternating order; report the medians",
    )
    parser.add_argument(
        "--python",
        action="store_true",
        help="also ours with the Python converters only (LOKIFI_MIGRATE_COMPILED=0)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="an earlier checkout whose migrate command is measured too (verification on)",
    )
    args = parser.parse_args()

    CACHE.mkdir(parents=True, exist_ok=True)
    source = CACHE / f"lokifi-{args.messages}-{args.users}-{args.threads}.sqlite"
    if not source.exists():
        t = time.monotonic()
        generate(source, args.messages, args.users, args.threads)
        print(f"generated {source} in {time.monotonic() - t:.0f}s")
    total = args.messages + args.users + args.threads
    print(f"source: {source} ({source.stat().st_size / 2**30:.2f} GiB, {total} rows)")
    skip = set(filter(None, args.skip.split(",")))
    pgloader = ensure_pgloader() if "pgloader" not in skip else ""
    work = Path(tempfile.mkdtemp(prefix="lokifi-bench-migrate-"))
    manifest = work / "resource.yaml"
    manifest.write_text(yaml.safe_dump(RESOURCE))
    results: dict[str, list[tuple[float, int, int]]] = {}
    with bench_server() as server:
        runs = [
            ("pgloader", "pgloader (defaults)"),
            ("verify", "ours, verification on"),
            ("noverify", "ours, --no-verify"),
        ]
        if args.python:
            runs.append(("python", "ours, Python converters only, verification on"))
        if args.baseline is not None:
            runs.append(("baseline", f"ours at {args.baseline.name}, verification on"))
        chosen = [r for r in runs if r[0] not in skip]
        for round_ in range(args.rounds):
            # Rounds alternate the order, so that a change in the machine's load during the
            # run does not always fall on the same loader.
            order = chosen if round_ % 2 == 0 else chosen[::-1]
            for key, _ in order:
                results.setdefault(key, []).append(
                    _run_one(key, server, work, source, manifest, total, pgloader, args)
                )

    print()
    print("| loader | time | rows/s | peak RSS | throughput vs pgloader |")
    print("|---|---:|---:|---:|---:|")
    base = _median(results["pgloader"]) if "pgloader" in results else None
    for key, label in runs:
        if key not in results:
            continue
        seconds, loaded, rss = _median(results[key])
        ratio = f"{(loaded / seconds) / (base[1] / base[0]):.2f}x" if base else "-"
        if args.rounds > 1:
            label += f" (median of {args.rounds})"
        print(
            f"| {label} | {seconds:.1f} s | {loaded / seconds:,.0f} | {rss / 1024:.0f} MiB "
            f"| {ratio} |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
