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
the loading process (os.wait4's ru_maxrss; the server is not counted), the CPU seconds (user +
sys) of the loading process and of the server during the run (postmaster, exited backends and
background processes, from /proc), and ratios to pgloader. On a shared machine the wall time
follows everyone's load; the CPU figures are what to compare between two versions of the code.
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


def run_measured(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, int, int, float]:
    """Wall seconds, exit status, peak RSS (KiB) and CPU seconds (user+sys) of one process."""
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return time.monotonic() - started, process.returncode, int(usage.ru_maxrss), cpu


def server_cpu(server: str) -> float:
    """CPU seconds the private server has used so far: the postmaster, the backends that have
    exited (its children's times) and the processes still running (checkpointer, WAL writer).

    On a shared machine the wall time of a run moves with everyone's load; the CPU it cost
    moves much less, so a change to the server's share of the work shows here first.
    """
    with psycopg.connect(server) as conn:
        data = str(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
    postmaster = int(Path(data, "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")

    def times(pid: int, children: bool) -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # after the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
        used = int(fields[11]) + int(fields[12])
        return used + (int(fields[13]) + int(fields[14]) if children else 0)

    total = times(postmaster, children=True)
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            total += times(int(child), children=False)
        except FileNotFoundError:
            continue
    return total / tick


def count_rows(url: str, tables: list[str]) -> int:
    with psycopg.connect(url) as conn:
        return sum(
            int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in tables
        )


Run = tuple[float, int, int, float, float]  # seconds, rows, peak RSS KiB, CPU s, server CPU s


def _median(runs: list[Run]) -> Run:
    """The run of median time (the lower of the two middle ones for an even count), with the
    median of each CPU figure (taken over all the runs, as the time's is)."""
    seconds, loaded, rss, _, _ = sorted(runs)[(len(runs) - 1) // 2]
    middle = (len(runs) - 1) // 2
    cpu = sorted(r[3] for r in runs)[middle]
    server_used = sorted(r[4] for r in runs)[middle]
    return seconds, loaded, rss, cpu, server_used


def _run_one(
    key: str,
    server: str,
    work: Path,
    source: Path,
    manifest: Path,
    total: int,
    pgloader: str,
    args: argparse.Namespace,
) -> Run:
    """One loader into a fresh database: seconds, rows loaded, peak RSS in KiB, CPU seconds of
    the process and of the server."""
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
    server_before = server_cpu(server)
    seconds, code, rss, cpu = run_measured(argv, env, work / f"{key}.log")
    server_used = server_cpu(server) - server_before
    print(
        f"{key}: exit {code} in {seconds:.1f}s, peak RSS {rss / 1024:.0f} MiB, CPU "
        f"{cpu:.1f}s in the process and {server_used:.1f}s in PostgreSQL "
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
    return seconds, loaded, rss, cpu, server_used


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
    results: dict[str, list[Run]] = {}
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
    print(
        "| loader | time | rows/s | peak RSS | CPU: process | CPU: PostgreSQL "
        "| throughput vs pgloader |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = _median(results["pgloader"]) if "pgloader" in results else None
    for key, label in runs:
        if key not in results:
            continue
        seconds, loaded, rss, cpu, server_used = _median(results[key])
        ratio = f"{(loaded / seconds) / (base[1] / base[0]):.2f}x" if base else "-"
        if args.rounds > 1:
            label += f" (median of {args.rounds})"
        print(
            f"| {label} | {seconds:.1f} s | {loaded / seconds:,.0f} | {rss / 1024:.0f} MiB "
            f"| {cpu:.1f} s | {server_used:.1f} s | {ratio} |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
