"""Shared pieces of the backup tests: a schema with awkward data, fingerprints of every table,
and the target/options the jobs take. Everything here talks to the real stack's servers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from lokifi_storage.clients.backup_store import BackupStore
from lokifi_storage.clients.postgres.backup import server_identity
from lokifi_storage.clients.s3 import make_client
from lokifi_storage.domain.backup_catalog import backup_folder, source_id
from lokifi_storage.jobs.backup_create import BackupTarget
from lokifi_storage.jobs.progress import Reporter
from stackfixtures import StackEnv, create_database, drop_database, unique_name

SCHEMA = """
CREATE TABLE ai_threads (id bigint PRIMARY KEY, user_id int NOT NULL, title text,
                         is_archived boolean NOT NULL DEFAULT false, meta jsonb);
CREATE TABLE ai_messages (id bigint NOT NULL, thread_id bigint NOT NULL, user_id int NOT NULL,
                          created_at timestamptz NOT NULL, content text, blob bytea)
  PARTITION BY RANGE (created_at);
CREATE TABLE ai_messages_2025_01 PARTITION OF ai_messages
  FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
CREATE TABLE ai_messages_2025_02 PARTITION OF ai_messages
  FOR VALUES FROM ('2025-02-01') TO ('2025-03-01');
CREATE TABLE ai_messages_default PARTITION OF ai_messages DEFAULT;
CREATE SCHEMA archive;
CREATE TABLE archive."Odd Name" (k text PRIMARY KEY, v numeric);
CREATE INDEX ON ai_messages (user_id, thread_id, created_at DESC);
"""

DATA = """
INSERT INTO ai_threads
  SELECT g, g % 97, 'thread ' || g || E'\\twith tab\\nand newline ☃', g % 5 = 0,
         jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g::text))
  FROM generate_series(1, {threads}) g;
INSERT INTO ai_messages
  SELECT g, g % {threads} + 1, g % 97, timestamptz '2025-01-01' + (g % 59) * interval '1 day'
           + (g % 86400) * interval '1 second',
         CASE WHEN g % 11 = 0 THEN NULL ELSE repeat(md5(g::text), 1 + g % 4) END,
         decode(md5(g::text), 'hex')
  FROM generate_series(1, {messages}) g;
INSERT INTO ai_messages
  SELECT g, 1, 1, timestamptz '2030-06-01', 'lost in default ' || g, NULL
  FROM generate_series({messages} + 1, {messages} + 25) g;
INSERT INTO archive."Odd Name" VALUES ('a"b', 1.5), ('back\\slash', NULL), ('', 0);
"""


def seed(url: str, *, threads: int = 200, messages: int = 5000) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(DATA.format(threads=int(threads), messages=int(messages)).encode())


def fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Every ordinary table -> (rows, md5 of its rows in a fixed order)."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2"
        ).fetchall()
        result = {}
        for schema, table in tables:
            query = sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
                " FROM ONLY {}.{} t"
            ).format(sql.Identifier(schema), sql.Identifier(table))
            row = conn.execute(query).fetchone()
            assert row is not None
            result[f"{schema}.{table}"] = (int(row[0]), str(row[1]))
        return result


NAMESPACE = "ns"  # the namespace cli_env's commands use


def folder_of(url: str, namespace: str = NAMESPACE, name: str = "lks") -> str:
    """The folder the CLI computes for the database at `url`: namespace, name, source."""
    return backup_folder(namespace, name, source_id(*server_identity(url)))


def target(stack: StackEnv, bucket: str, name: str = "lks", db: str | None = None) -> BackupTarget:
    """`name` as the folder, or, with `db`, the folder the CLI uses for that database."""
    client = make_client(
        stack.s3_endpoint, stack.aws_region, stack.aws_access_key_id, stack.aws_secret_access_key
    )
    folder = folder_of(db, name=name) if db is not None else name
    return BackupTarget(store=BackupStore(client, bucket), prefix="backups/", name=folder)


@contextmanager
def scratch_server(stack: StackEnv) -> Iterator[str]:
    """A second, throwaway PostgreSQL server (its own initdb, so its own system_identifier):
    what spec.backups.verifyTarget names. Yields its URL; stopped and removed afterwards."""
    import shutil
    import socket
    import subprocess
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="lokifi-scratch-pg-"))
    shutil.chown(root, "postgres", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = root / "data"

    def as_postgres(*argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            cwd="/",
            check=True,
            capture_output=True,
            timeout=120,
        )

    pg = Path(stack.pg_bin)
    as_postgres(
        str(pg / "initdb"),
        "-D",
        str(data),
        "-U",
        "lokifi",
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
    )
    as_postgres(
        str(pg / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        yield f"postgresql://lokifi@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def quiet() -> Reporter:
    return Reporter(stream=io.StringIO(), tty=False)


def all_keys(stack: StackEnv, bucket: str) -> list[str]:
    listing = stack.s3_client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def open_uploads(stack: StackEnv, bucket: str) -> list[str]:
    listing = stack.s3_client().list_multipart_uploads(Bucket=bucket)
    return [item["Key"] for item in listing.get("Uploads", [])]


def databases(stack: StackEnv) -> set[str]:
    with psycopg.connect(stack.pg_primary_url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


@contextmanager
def fresh_database(stack: StackEnv, hint: str) -> Iterator[str]:
    """A second empty database (restore target), dropped afterwards."""
    name = unique_name(hint, 63)
    db = create_database(stack, name)
    try:
        yield str(db)
    finally:
        drop_database(stack, name)


def cli_env(stack: StackEnv, url: str, bucket: str, **extra: str) -> dict[str, str]:
    """The environment a backup CronJob gets: URL and keys as variables, never as flags."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOKIFI_", "AWS_"))}
    env.update(
        LOKIFI_PRIMARY_URL=url,
        LOKIFI_BACKUP_BUCKET=bucket,
        LOKIFI_BACKUP_NAME="lks",
        LOKIFI_BACKUP_NAMESPACE=NAMESPACE,
        LOKIFI_S3_ENDPOINT=stack.s3_endpoint,
        LOKIFI_PG_BIN=stack.pg_bin,
        AWS_ACCESS_KEY_ID=stack.aws_access_key_id,
        AWS_SECRET_ACCESS_KEY=stack.aws_secret_access_key,
        AWS_DEFAULT_REGION=stack.aws_region,
    )
    env.update(extra)
    return env


def cli() -> str:
    """The installed console script of this checkout's virtualenv."""
    import sys
    from pathlib import Path

    return str(Path(sys.executable).with_name("lokifi-storage"))


SLOW_PG_DUMP = """#!{python}
# Fault injection for tests: the real pg_dump, its output throttled to {rate} bytes per
# 50 ms so that a test can act while the upload is in progress; optionally cut after
# {cut} bytes with exit status 1, as when pg_dump dies mid-dump.
import os, subprocess, sys, time
real = subprocess.Popen([{real!r}] + sys.argv[1:], stdout=subprocess.PIPE)
sent = 0
while True:
    chunk = real.stdout.read({rate})
    if not chunk:
        break
    if {cut} and sent + len(chunk) > {cut}:
        sys.stdout.buffer.write(chunk[: {cut} - sent])
        sys.stdout.buffer.flush()
        real.kill()
        sys.exit(1)
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    sent += len(chunk)
    time.sleep(0.05)
sys.exit(real.wait())
"""


def pg_bin_with_faulty_pg_dump(
    stack: StackEnv, directory: object, *, rate: int = 1 << 20, cut: int = 0
) -> str:
    """A pg_bin directory whose pg_dump is the real one behind SLOW_PG_DUMP."""
    import os
    import sys
    from pathlib import Path

    path = Path(str(directory))
    path.mkdir(parents=True, exist_ok=True)
    script = path / "pg_dump"
    script.write_text(
        SLOW_PG_DUMP.format(
            python=sys.executable,
            real=os.path.join(stack.pg_bin, "pg_dump"),
            rate=rate,
            cut=cut,
        )
    )
    script.chmod(0o755)
    return str(path)
