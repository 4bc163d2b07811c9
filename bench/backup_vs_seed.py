"""Backup benchmark: the seed's `pg_dump | gzip | aws s3 cp -` against `lokifi-storage backup
create`, on one generated database, to one S3 server, in one run. Prints time and size ratios.

    .venv/bin/python bench/backup_vs_seed.py --size-gb 2

Uses the local stack (stack.env: the PostgreSQL primary and the S3 server) unless --url /
--endpoint say otherwise. The database (`--dbname`, default lokifi_bench) is generated with
generate_series when it is smaller than --size-gb, and kept for the next run unless --drop.
Every pipeline is run --runs times (default 1) and the best time is reported.

The seed pipeline is exactly the seed's: plain-format pg_dump, gzip at its default level, and
the AWS CLI streaming from stdin (`aws s3 cp - s3://...`), with the password in PGPASSWORD.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
MONTHS = 12

SCHEMA = """
CREATE TABLE IF NOT EXISTS ai_threads (
    id bigint PRIMARY KEY, user_id int NOT NULL, title text NOT NULL,
    is_archived boolean NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS ai_messages (
    id bigint NOT NULL, thread_id bigint NOT NULL, user_id int NOT NULL,
    created_at timestamptz NOT NULL, role text NOT NULL, content text,
    tokens int NOT NULL) PARTITION BY RANGE (created_at);
"""

# ~500 bytes of text per message: an id-like token, a templated sentence and a repeated phrase,
# roughly as compressible as chat text (gzip ~3-4x).
MESSAGES = """
INSERT INTO ai_messages
SELECT g, g / 20, (g / 20) %% 50000,
       timestamptz '2025-01-01' + (g %% (365 * 86400)) * interval '1 second',
       CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END,
       md5(g::text) || ' the user asked about topic ' || (g %% 977) || ' and the assistant '
         || 'answered with details on ' || substr(md5((g / 3)::text), 1, 12) || '. '
         || repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit ' || (g %% 13) || '. ',
                   5 + g %% 4),
       50 + g %% 700
FROM generate_series(%(start)s, %(stop)s) g
"""


def read_stack_env() -> dict[str, str]:
    configured = os.environ.get("LOKIFI_STACK_DIR")
    root = Path(configured) if configured else Path.home() / ".local/state/lokifi-stack"
    values: dict[str, str] = {}
    env_file = root / "stack.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
    return values


def with_db(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


def db_size(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def ensure_database(server_url: str, dbname: str, size_gb: float) -> str:
    url = with_db(server_url, dbname)
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    target = int(size_gb * 1024**3)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        for month in range(MONTHS):
            start = f"2025-{month + 1:02d}-01"
            stop = f"{2025 + (month + 1) // 12}-{(month + 1) % 12 + 1:02d}-01"
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF ai_messages"
                    " FOR VALUES FROM ({}) TO ({})"
                ).format(
                    sql.Identifier(f"ai_messages_2025_{month + 1:02d}"),
                    sql.Literal(start),
                    sql.Literal(stop),
                )
            )
        row = conn.execute("SELECT coalesce(max(id), 0) FROM ai_messages").fetchone()
        next_id = int(row[0]) + 1 if row else 1
        batch = 500_000
        while (size := db_size(url)) < target:
            print(f"  generating: {size / 1024**3:.2f} of {size_gb} GiB", flush=True)
            conn.execute(MESSAGES, {"start": next_id, "stop": next_id + batch - 1})
            next_id += batch
        conn.execute(
            "INSERT INTO ai_threads SELECT t, t %% 50000, 'thread ' || t, t %% 7 = 0, now()"
            " FROM generate_series(1, %s) t ON CONFLICT DO NOTHING",
            (next_id // 20 + 1,),
        )
        conn.execute("VACUUM ANALYZE")
    return url


def object_size(s3: object, bucket: str, key: str) -> int:
    return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])  # type: ignore[attr-defined]


def timed(argv: list[str] | str, env: dict[str, str], *, shell: bool = False) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, env=env, shell=shell, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {result.stderr[-2000:]}")
    return seconds


AWS_CLI_VENV = Path.home() / ".cache" / "lokifi-storage" / "bench-awscli"


def aws_cli() -> str:
    """The AWS CLI of the seed pipeline, installed from PyPI into its own venv on first use.

    It lives outside the project's venv because awscli pins a botocore older than ours.
    """
    aws = AWS_CLI_VENV / "bin" / "aws"
    if not aws.exists():
        print(f"installing the AWS CLI into {AWS_CLI_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(AWS_CLI_VENV)], check=True)
        pip = [str(AWS_CLI_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "awscli"]
        subprocess.run(pip, check=True)
    return str(aws)


def main() -> int:
    stack = read_stack_env()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="database size to generate")
    parser.add_argument("--dbname", default="lokifi_bench")
    parser.add_argument(
        "--url",
        default=stack.get("LOKIFI_PG_PRIMARY_URL"),
        help="server URL (any database; the bench database is created beside it)",
    )
    parser.add_argument("--endpoint", default=stack.get("LOKIFI_S3_ENDPOINT"))
    parser.add_argument("--bucket", default="lokifi-bench")
    parser.add_argument("--pg-bin", default=stack.get("LOKIFI_PG_BIN"))
    parser.add_argument(
        "--codecs",
        default="zstd",
        help="our runs, comma-separated codec[:level] (e.g. zstd,zstd:6,lz4,gzip)",
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards")
    args = parser.parse_args()
    if not args.url:
        sys.exit("no --url and no stack.env: run `python -m stack up` first")
    aws = aws_cli()

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        if key in stack and key not in os.environ:
            os.environ[key] = stack[key]
    env = {**os.environ}
    s3 = boto3.client("s3", endpoint_url=args.endpoint)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=args.bucket)

    print(f"database {args.dbname}: ensuring >= {args.size_gb} GiB", flush=True)
    url = ensure_database(args.url, args.dbname, args.size_gb)
    size = db_size(url)
    parts = urlsplit(url)
    password = parts.password or ""
    safe_url = urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))
    pg_dump = os.path.join(args.pg_bin, "pg_dump") if args.pg_bin else "pg_dump"
    seed_env = {**env, "PGPASSWORD": password}
    endpoint = f" --endpoint-url {shlex.quote(args.endpoint)}" if args.endpoint else ""

    results: list[tuple[str, float, int]] = []

    def best(label: str, run: object, key: str) -> None:
        times = [run() for _ in range(args.runs)]  # type: ignore[operator]
        results.append((label, min(times), object_size(s3, args.bucket, key)))
        print(f"  {label}: {min(times):.1f}s, {results[-1][2] / 1024**2:.1f} MiB", flush=True)

    seed_key = "seed/backup.sql.gz"
    seed_cmd = (
        f"set -o pipefail; {shlex.quote(pg_dump)} {shlex.quote(safe_url)} | gzip | "
        f"{shlex.quote(aws)} s3 cp - s3://{args.bucket}/{seed_key}{endpoint}"
    )
    print("seed: " + seed_cmd.replace(safe_url, "<url without password>"), flush=True)
    best(
        "seed: pg_dump \\| gzip \\| aws s3 cp -",
        lambda: timed(["bash", "-c", seed_cmd], seed_env),
        seed_key,
    )

    cli = str(Path(sys.executable).with_name("lokifi-storage"))
    ours_env = {
        **env,
        "LOKIFI_PRIMARY_URL": url,
        "LOKIFI_S3_ENDPOINT": args.endpoint or "",
        "LOKIFI_BACKUP_BUCKET": args.bucket,
    }
    if args.pg_bin:
        ours_env["LOKIFI_PG_BIN"] = args.pg_bin
    for run in args.codecs.split(","):
        codec, _, level = run.partition(":")
        schedule = f"bench-{codec}-{level or 'default'}"
        argv = [
            cli,
            "backup",
            "create",
            "--schedule",
            schedule,
            "--name",
            "bench",
            "--namespace",
            "bench",
            "--compression",
            codec,
            "--keep",
            "1",
        ] + (["--level", level] if level else [])

        def ours(argv: list[str] = argv) -> float:
            return timed(argv, ours_env)

        def newest(schedule: str = schedule) -> str:
            listing = s3.list_objects_v2(Bucket=args.bucket, Prefix="backups/bench/bench/")
            dumps = [
                o["Key"]
                for o in listing.get("Contents", [])
                if f"/{schedule}/" in o["Key"] and ".dump" in o["Key"]
            ]
            return sorted(dumps)[-1]

        times = [ours() for _ in range(args.runs)]
        key = newest()
        results.append(
            (
                f"ours: lokifi-storage backup create ({run})",
                min(times),
                object_size(s3, args.bucket, key),
            )
        )
        print(
            f"  {results[-1][0]}: {min(times):.1f}s, {results[-1][2] / 1024**2:.1f} MiB", flush=True
        )

    _, seed_time, seed_size = results[0]
    print()
    print(f"database: {size / 1024**3:.2f} GiB (pg_database_size), {os.cpu_count()} CPUs")
    print()
    print("| pipeline | time | object | time vs seed | size vs seed |")
    print("|---|---:|---:|---:|---:|")
    for label, seconds, stored in results:
        print(
            f"| {label} | {seconds:.1f} s | {stored / 1024**2:.1f} MiB | "
            f"{seconds / seed_time:.2f}x | {stored / seed_size:.2f}x |"
        )
    if args.drop:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(args.dbname))
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
