"""`lokifi-storage migrate sqlite` against the real PostgreSQL, with SQLite files built here.

Each test runs the CLI as the example Job does (a subprocess, URL in the environment) and reads
the target database afterwards; the verification digest the command computes is checked too,
since every value kind must print back from PostgreSQL exactly as the converter wrote it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from migratekit import (
    MESSAGES_TABLE,
    build_app_file,
    build_samples_file,
    migrate_argv,
    migrate_env,
    query,
    resource,
    run_migrate,
    tables_in,
)

from lokifi_storage.clients import sqlite_copy
from lokifi_storage.clients.errors import ClientError, ConnectionFailed
from lokifi_storage.clients.migrate_target import MigrateTarget
from lokifi_storage.domain.migrate_schema import TargetColumn
from lokifi_storage.domain.partitions.catalog import QName
from stackfixtures import PgDatabase

UTC = dt.UTC


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-reader", "python-only"])
def test_every_value_kind_is_converted_and_the_digests_agree(
    pg_database: PgDatabase, tmp_path: Path, compiled: bool
) -> None:
    if compiled and not sqlite_copy.available():
        pytest.skip("the compiled SQLite reader is not built: run scripts/install.sh")
    source = build_samples_file(tmp_path / "samples.sqlite")
    manifest = resource(tmp_path / "lks.yaml", [])

    run = run_migrate(
        pg_database, source, manifest, env={"LOKIFI_MIGRATE_COMPILED": "1" if compiled else "0"}
    )

    assert run.returncode == 0, run.stdout + run.stderr
    used = "the compiled reader" if compiled else "the Python converters"
    assert f"converting with {used}" in run.stdout
    assert "verified public.samples: 2006 rows" in run.stdout
    rows = {
        r[0]: r[1:]
        for r in query(
            pg_database,
            "SELECT id, at, flag, doc::text, data, note, ratio, amount::text, day, untyped"
            " FROM samples WHERE id < 100",
        )
    }
    at = dt.datetime(2024, 3, 5, 10, 11, 12, tzinfo=UTC)
    assert [rows[i][0] for i in range(1, 7)] == [
        at,
        at,
        at,
        at,
        at + dt.timedelta(milliseconds=123),
        at + dt.timedelta(milliseconds=250),
    ]
    assert [rows[i][1] for i in range(1, 7)] == [True, False, True, False, True, False]
    assert rows[1][2] == '{"a": [1.50, 100], "b": 2}'
    assert json.loads(rows[2][2]) == {"ccc": {"é": "é\n"}, "dd": None}
    assert rows[6][2] == '{"a": 2}'
    assert rows[1][3] == b"\x00\xff"
    assert rows[4][3] is None
    assert rows[1][4] == "tab\there"
    assert rows[2][4] == "new\nline\\"
    assert rows[4][4] == "bell\x07 bs\x08 ff\x0c vt\x0b cr\r"
    assert rows[6][4] == "x" * 3000
    assert rows[3][5] == 0.0
    assert rows[6][5] == float("inf")
    # NUMERIC affinity: SQLite itself stored these texts as numbers.
    assert [rows[i][6] for i in (1, 2, 3, 5, 6)] == ["1.5", "3", "2.5", "0", "12345678901234567000"]
    assert rows[2][7] == dt.date(2024, 2, 29)
    assert [rows[i][8] for i in (1, 2, 3)] == ["7", "x", "1.5"]
    # The random floats' bits matched on both sides (the digest), and the sequence moved on.
    assert query(pg_database, "SELECT count(*) FROM samples WHERE ratio IS NOT NULL")[0][0] == 2006
    assert (
        query(pg_database, "SELECT nextval(pg_get_serial_sequence('samples', 'id'))")[0][0] == 2100
    )


@pytest.mark.parametrize(
    ("option", "expected"),
    [((), "lz4"), (("--toast-compression", "pglz"), "pglz")],
    ids=["default-lz4", "pglz"],
)
def test_long_values_are_compressed_as_asked_and_the_columns_keep_the_server_default(
    pg_database: PgDatabase, tmp_path: Path, option: tuple[str, ...], expected: str
) -> None:
    source = tmp_path / "long.sqlite"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.executemany(
        "INSERT INTO notes VALUES (?, ?)", [(i, f"note {i} " * 900) for i in range(1, 11)]
    )
    conn.commit()
    conn.close()
    methods = query(
        pg_database, "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
    )[0][0]
    if expected not in methods:
        pytest.skip(f"this PostgreSQL was built without {expected}")

    run = run_migrate(pg_database, source, resource(tmp_path / "lks.yaml", []), *option)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "verified public.notes: 10 rows" in run.stdout
    stored = query(pg_database, "SELECT DISTINCT pg_column_compression(body) FROM notes")
    assert stored == [(expected,)]
    # Only the loaded values: the column itself keeps the server's default for the app.
    column = query(
        pg_database,
        "SELECT attcompression FROM pg_attribute"
        " WHERE attrelid = 'notes'::regclass AND attname = 'body'",
    )
    assert column == [("",)]
    assert query(pg_database, "SELECT body FROM notes WHERE id = 3")[0][0] == "note 3 " * 900


def test_the_app_file_lands_in_monthly_and_user_range_partitions_old_months_archived(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    source = build_app_file(tmp_path / "lokifi.sqlite", 3000)
    manifest = resource(tmp_path / "lks.yaml", [MESSAGES_TABLE])

    run = run_migrate(pg_database, source, manifest)

    assert run.returncode == 0, run.stdout + run.stderr
    for table, n in (("users", 50), ("ai_threads", 200), ("ai_messages", 3000)):
        assert f"verified public.{table}: {n} rows" in run.stdout
    # Run again: everything is there, so nothing is loaded or built a second time.
    again = run_migrate(pg_database, source, manifest)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "built after the rows" not in again.stdout
    assert "verified public.ai_messages: 3000 rows" in again.stdout
    # Before December 2024 (archive.afterDays 365 before --now): in the archive, nothing else.
    main = query(
        pg_database,
        "SELECT count(*), min(created_at) FROM ONLY ai_messages_default"
        " UNION ALL SELECT count(*), min(created_at) FROM ai_messages",
    )
    assert main[0][0] == 0
    assert main[1][1] >= dt.datetime(2024, 12, 1, tzinfo=UTC)
    archived = query(pg_database, "SELECT count(*), max(created_at) FROM archive.ai_messages")[0]
    assert archived[1] < dt.datetime(2024, 12, 1, tzinfo=UTC)
    assert archived[0] + query(pg_database, "SELECT count(*) FROM ai_messages")[0][0] == 3000
    leaves = query(
        pg_database,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'archive.ai_messages_p2023_01'::regclass ORDER BY 1",
    )
    assert [r[0] for r in leaves] == [
        "ai_messages_p2023_01_s0",
        "ai_messages_p2023_01_s1",
        "ai_messages_p2023_01_sdefault",
    ]
    by_leaf = query(
        pg_database,
        "SELECT tableoid::regclass::text, min(user_id), max(user_id)"
        " FROM archive.ai_messages GROUP BY 1 ORDER BY 1 LIMIT 3",
    )
    assert by_leaf[0][1:] == (1, 24)  # s0 holds users [0, 25)
    # The app inserts at once: the sequence is past the migrated maximum.
    query(
        pg_database,
        "INSERT INTO ai_messages (thread_id, user_id, role, content, created_at)"
        " VALUES (1, 1, 'user', 'hi', now())",
    )
    assert query(pg_database, "SELECT max(id) FROM ai_messages")[0][0] == 3001
    fks = query(
        pg_database,
        "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 ORDER BY 1",
    )
    assert [r[0] for r in fks] == ["ai_messages_thread_id_fkey", "ai_threads_user_id_fkey"]
    # Keys and the declared index were built after the rows, where a reconcile expects them:
    # every leaf has a primary key, and the partitioned indexes are valid (PostgreSQL marks
    # one valid only once every partition below it has its index attached).
    assert "primary key and indexes built after the rows" in run.stdout
    unkeyed = query(
        pg_database,
        "SELECT t.relid::regclass::text FROM unnest(ARRAY['ai_messages'::regclass,"
        " 'archive.ai_messages'::regclass]) r, pg_partition_tree(r) t"
        " JOIN pg_class c ON c.oid = t.relid AND c.relkind = 'r'"
        " WHERE NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = t.relid AND i.indisprimary)",
    )
    assert unkeyed == []
    assert query(
        pg_database,
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_index"
        " WHERE indexrelid::regclass::text LIKE '%idx_ai_messages_user_thread_time' ORDER BY 1",
    ) == [
        ("archive.idx_ai_messages_user_thread_time", True),
        ("idx_ai_messages_user_thread_time", True),
    ]
    assert [
        r[0]
        for r in query(
            pg_database,
            "SELECT conname FROM pg_constraint"
            " WHERE contype = 'p' AND conrelid IN ('users'::regclass, 'ai_messages'::regclass)"
            " ORDER BY 1",
        )
    ] == ["ai_messages_pkey", "users_pkey"]


def test_unconvertible_rows_go_to_the_rejects_table_with_table_key_column_and_reason(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    source = build_app_file(tmp_path / "lokifi.sqlite", 400)
    conn = sqlite3.connect(source)
    conn.execute("UPDATE ai_messages SET content = 'a' || char(0) || 'b' WHERE id = 11")
    conn.execute("UPDATE ai_messages SET content = CAST(x'61ff62' AS TEXT) WHERE id = 12")
    conn.execute("UPDATE ai_messages SET created_at = NULL WHERE id = 13")
    conn.execute("UPDATE ai_messages SET created_at = 'last tuesday' WHERE id = 14")
    conn.execute("UPDATE ai_messages SET metadata = '{broken' WHERE id = 15")
    conn.execute("UPDATE users SET is_active = 2 WHERE id = 3")
    conn.commit()
    conn.close()
    manifest = resource(tmp_path / "lks.yaml", [MESSAGES_TABLE])

    run = run_migrate(pg_database, source, manifest)

    assert run.returncode == 8, run.stdout + run.stderr
    assert "ai_messages -> public.ai_messages: 395 rows copied, 5 rejected, verified" in run.stdout
    assert "6 rejected (see lokifi_migrate.rejects)" in run.stdout
    rejects = query(
        pg_database,
        "SELECT source_table, row_key, column_name, reason FROM lokifi_migrate.rejects"
        " ORDER BY source_table, row_key",
    )
    assert [r[:3] for r in rejects] == [
        ("ai_messages", "id=11", "content"),
        ("ai_messages", "id=12", "content"),
        ("ai_messages", "id=13", "created_at"),
        ("ai_messages", "id=14", "created_at"),
        ("ai_messages", "id=15", "metadata"),
        ("users", "id=3", "is_active"),
    ]
    reasons = [r[3] for r in rejects]
    assert "NUL byte" in reasons[0]
    assert "invalid UTF-8" in reasons[1]
    assert reasons[2] == "NULL in a NOT NULL column"
    assert "not an ISO 8601 time" in reasons[3]
    assert "invalid JSON" in reasons[4]
    assert "not a boolean" in reasons[5]
    assert (
        query(pg_database, "SELECT count(*) FROM ai_messages WHERE id BETWEEN 11 AND 15")[0][0]
        + query(pg_database, "SELECT count(*) FROM archive.ai_messages WHERE id BETWEEN 11 AND 15")[
            0
        ][0]
        == 0
    )


def test_rows_the_server_refuses_are_found_by_bisection_and_rejected(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    source = build_app_file(tmp_path / "lokifi.sqlite", 500)
    conn = sqlite3.connect(source)
    conn.execute("UPDATE ai_threads SET title = 'forbidden' WHERE id IN (7, 150)")
    conn.commit()
    conn.close()
    query(
        pg_database,
        "CREATE TABLE ai_threads (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        " user_id bigint NOT NULL,"
        " title text CHECK (title <> 'forbidden'), created_at timestamptz,"
        " archived boolean NOT NULL DEFAULT false)",
    )
    manifest = resource(tmp_path / "lks.yaml", [])

    run = run_migrate(pg_database, source, manifest, "--chunk-rows", "64")

    assert run.returncode == 8, run.stdout + run.stderr
    rejects = query(
        pg_database,
        "SELECT row_key, reason FROM lokifi_migrate.rejects"
        " ORDER BY split_part(row_key, '=', 2)::bigint",
    )
    assert [r[0] for r in rejects] == ["id=7", "id=150"]
    assert all("ai_threads_title_check" in r[1] for r in rejects)
    assert query(pg_database, "SELECT count(*), count(*) FILTER (WHERE archived) FROM ai_threads")[
        0
    ] == (198, 0)
    assert "verified public.ai_threads: 198 rows" in run.stdout
    # The identity column continues past the largest migrated id.
    added = query(pg_database, "INSERT INTO ai_threads (user_id) VALUES (1) RETURNING id")
    assert added == [(201,)]


def test_a_pre_existing_partitioned_table_of_the_app_takes_the_rows(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    source = build_app_file(tmp_path / "lokifi.sqlite", 800)
    query(
        pg_database,
        "CREATE TABLE ai_messages (id bigserial NOT NULL, thread_id bigint NOT NULL,"
        " user_id bigint NOT NULL, role text NOT NULL, content text NOT NULL, tokens integer,"
        " metadata jsonb, created_at timestamptz NOT NULL DEFAULT now(),"
        " edited boolean NOT NULL DEFAULT false) PARTITION BY RANGE (created_at)",
    )
    manifest = resource(tmp_path / "lks.yaml", [MESSAGES_TABLE])

    run = run_migrate(pg_database, source, manifest)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "created public.ai_messages" not in run.stdout
    assert "verified public.ai_messages: 800 rows" in run.stdout
    total = query(
        pg_database,
        "SELECT (SELECT count(*) FROM ai_messages) + (SELECT count(*) FROM archive.ai_messages)",
    )
    assert total[0][0] == 800
    assert query(pg_database, "SELECT pg_typeof(tokens)::text FROM ai_messages LIMIT 1")[0][0] == (
        "integer"
    )


def test_an_existing_table_that_does_not_fit_is_named_and_nothing_is_written(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    source = build_app_file(tmp_path / "lokifi.sqlite", 50)
    query(pg_database, "CREATE TABLE users (id bigint PRIMARY KEY, email interval)")
    manifest = resource(tmp_path / "lks.yaml", [])

    run = run_migrate(pg_database, source, manifest)

    assert run.returncode == 7, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "public.users.email is interval" in lines[0]
    assert "public.users.is_active: the SQLite column users.is_active has no column" in lines[0]
    assert tables_in(pg_database) == ["public.users"]


def every_id_once(url: str) -> tuple[int, int]:
    """(rows, distinct ids) of the live table and the archive together."""
    counted = query(
        url,
        "SELECT count(*), count(DISTINCT id) FROM (SELECT id FROM ai_messages"
        " UNION ALL SELECT id FROM archive.ai_messages) AS m",
    )[0]
    return counted[0], counted[1]


def test_kill_9_mid_run_then_a_rerun_resumes_without_duplicates(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    messages = 60_000
    source = build_app_file(tmp_path / "lokifi.sqlite", messages)
    manifest = resource(tmp_path / "lks.yaml", [MESSAGES_TABLE])
    process = subprocess.Popen(
        migrate_argv(source, manifest, "--chunk-rows", "500"),
        env=migrate_env(pg_database),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    copied = 0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            rows = (
                query(
                    pg_database,
                    "SELECT coalesce(sum(rows_copied), 0) FROM lokifi_migrate.chunks"
                    " WHERE source_table = 'ai_messages'",
                )
                if "lokifi_migrate.chunks" in tables_in(pg_database)
                else [(0,)]
            )
            copied = int(rows[0][0])
            if copied >= 5000:
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    before = query(
        pg_database,
        "SELECT (SELECT sum(rows_copied) FROM lokifi_migrate.chunks"
        "  WHERE source_table = 'ai_messages'), finished"
        " FROM lokifi_migrate.checkpoints WHERE source_table = 'ai_messages'",
    )[0]
    assert 5000 <= before[0] < messages
    assert before[1] is False

    run = run_migrate(pg_database, source, manifest, "--chunk-rows", "500")

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"verified public.ai_messages: {messages} rows" in run.stdout
    assert every_id_once(pg_database) == (messages, messages)


def test_a_rerun_after_chunks_committed_out_of_order_loads_only_the_missing_ones(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    """What several writers leave when killed: a gapless prefix, one chunk missing in the
    middle, later chunks committed, the tail missing. Made deterministic by taking a full
    run's chunks (and their rows) back out, as if they had never committed."""
    messages = 6000
    source = build_app_file(tmp_path / "lokifi.sqlite", messages)
    manifest = resource(tmp_path / "lks.yaml", [MESSAGES_TABLE])
    first = run_migrate(pg_database, source, manifest, "--chunk-rows", "500")
    assert first.returncode == 0, first.stdout + first.stderr
    chunks = query(
        pg_database,
        "SELECT after_rowid, last_rowid FROM lokifi_migrate.chunks"
        " WHERE source_table = 'ai_messages' ORDER BY after_rowid",
    )
    assert len(chunks) >= 8
    dropped = [chunks[2], *chunks[5:]]  # a hole after the prefix, and the tail
    for after, last in dropped:
        for table in ("ai_messages", "archive.ai_messages"):
            query(pg_database, f"DELETE FROM {table} WHERE id > %s AND id <= %s", (after, last))
        query(
            pg_database,
            "DELETE FROM lokifi_migrate.rejects WHERE source_table = 'ai_messages'"
            " AND split_part(row_key, '=', 2)::bigint > %s"
            " AND split_part(row_key, '=', 2)::bigint <= %s",
            (after, last),
        )
        query(
            pg_database,
            "DELETE FROM lokifi_migrate.chunks WHERE source_table = 'ai_messages'"
            " AND after_rowid = %s",
            (after,),
        )
    query(
        pg_database,
        "UPDATE lokifi_migrate.checkpoints SET finished = false WHERE source_table = 'ai_messages'",
    )

    run = run_migrate(pg_database, source, manifest, "--chunk-rows", "500")

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"verified public.ai_messages: {messages} rows" in run.stdout
    assert every_id_once(pg_database) == (messages, messages)
    kept = set(chunks) - set(dropped)
    after_rerun = set(
        query(
            pg_database,
            "SELECT after_rowid, last_rowid FROM lokifi_migrate.chunks"
            " WHERE source_table = 'ai_messages'",
        )
    )
    assert kept <= after_rerun  # the committed chunks were left alone, not redone


def test_dry_run_prints_the_plan_and_changes_nothing(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    source = build_app_file(tmp_path / "lokifi.sqlite", 1200)
    manifest = resource(tmp_path / "lks.yaml", [MESSAGES_TABLE])

    run = run_migrate(pg_database, source, manifest, "--dry-run")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "ai_messages -> public.ai_messages (to create): 1200 rows" in run.stdout
    assert "created_at DATETIME -> timestamp with time zone NOT NULL" in run.stdout
    # 36 months of data plus December 2025 and the 3 premade ahead; 23 before December 2024.
    assert "partitions to make: 40, 23 of them into archive.ai_messages" in run.stdout
    assert tables_in(pg_database) == []


def test_bad_input_fails_in_one_line_with_its_exit_code_and_writes_nothing(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    manifest = resource(tmp_path / "lks.yaml", [MESSAGES_TABLE])
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_bytes(b"this is not a database\n" * 200)
    missing_table = tmp_path / "empty.sqlite"
    sqlite3.connect(missing_table).execute("CREATE TABLE users (id INTEGER PRIMARY KEY)").close()
    locked = build_app_file(tmp_path / "locked.sqlite", 10)
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO users (email) VALUES ('x@example.org')")
    try:
        results = {
            name: run_migrate(pg_database, path, manifest, "--busy-timeout-ms", "200")
            for name, path in (
                ("corrupt", not_sqlite),
                ("missing", missing_table),
                ("locked", locked),
            )
        }
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    codes = {name: r.returncode for name, r in results.items()}
    assert codes == {"corrupt": 3, "missing": 5, "locked": 6}
    for name, result in results.items():
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
    assert "notes.txt: not a SQLite database" in results["corrupt"].stderr
    assert "has no table ai_messages, which the resource declares" in results["missing"].stderr
    assert "locked.sqlite: the SQLite database is locked" in results["locked"].stderr
    assert tables_in(pg_database) == []


def test_digest_of_the_target_catches_a_changed_value(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    source = build_app_file(tmp_path / "lokifi.sqlite", 300)
    manifest = resource(tmp_path / "lks.yaml", [])
    assert run_migrate(pg_database, source, manifest).returncode == 0
    # Change one stored value behind the checkpoints' back: a re-run verifies and finds it.
    query(pg_database, "UPDATE ai_messages SET tokens = tokens + 1 WHERE id = 42")

    run = run_migrate(pg_database, source, manifest)

    assert run.returncode == 4, run.stdout + run.stderr
    assert "VERIFY FAILED public.ai_messages: row digests differ" in run.stdout
    assert run.stderr.strip() == "error: verification failed for public.ai_messages"


def test_verification_reads_every_partition_back_a_changed_or_lost_row_is_caught(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    """The target side is read back leaf by leaf, archive included: a value changed in an
    archived sub-partition, or a row gone from the live table, fails the re-run's check."""
    source = build_app_file(tmp_path / "lokifi.sqlite", 600)
    manifest = resource(tmp_path / "lks.yaml", [MESSAGES_TABLE])
    assert run_migrate(pg_database, source, manifest).returncode == 0
    archived, content = query(
        pg_database, "SELECT id, content FROM archive.ai_messages ORDER BY id LIMIT 1"
    )[0]
    query(
        pg_database,
        "UPDATE archive.ai_messages SET content = content || ' ' WHERE id = %s",
        (archived,),
    )

    changed = run_migrate(pg_database, source, manifest)

    assert changed.returncode == 4, changed.stdout + changed.stderr
    assert "VERIFY FAILED public.ai_messages: row digests differ" in changed.stdout

    query(
        pg_database,
        "UPDATE archive.ai_messages SET content = %s WHERE id = %s",
        (content, archived),
    )
    assert run_migrate(pg_database, source, manifest).returncode == 0
    query(pg_database, "DELETE FROM ai_messages WHERE id = (SELECT max(id) FROM ai_messages)")

    lost = run_migrate(pg_database, source, manifest)

    assert lost.returncode == 4, lost.stdout + lost.stderr
    assert "VERIFY FAILED public.ai_messages: 599 rows in PostgreSQL, 600 copied" in lost.stdout


def test_a_statement_the_server_cancels_is_not_reported_as_a_lost_connection(
    pg_database: PgDatabase,
) -> None:
    """The target's driver errors go through the one translation (clients/postgres/connection.py)
    with its connection: an OperationalError on a session that stays open (a cancelled statement,
    a full disk) is what the server refused; only a session that is gone is a lost connection."""
    target = MigrateTarget.open(pg_database)
    try:
        target.execute("SET statement_timeout = '50ms'", "setting a timeout")
        with pytest.raises(ClientError) as refused:
            target.execute("SELECT pg_sleep(2)", "sleeping")
        assert type(refused.value) is ClientError
        assert "sleeping failed (QueryCanceled" in refused.value.message
        assert refused.value.message.startswith(f"primary {target.target}: ")
        assert target.query("SELECT 1") == [(1,)]
        with pytest.raises(ConnectionFailed, match="connection lost during ending the session"):
            target.execute("SELECT pg_terminate_backend(pg_backend_pid())", "ending the session")
    finally:
        target.close()


def test_reading_a_leaf_back_counts_and_hashes_every_line_and_leaves_the_session_usable(
    pg_database: PgDatabase,
) -> None:
    """The read-back takes the rows libpq has already received without psycopg's wait per row,
    and ends the COPY itself when its end was received with them: every size of table gives
    the count and digest of psycopg's own reading, and the session is idle afterwards."""
    query(
        pg_database,
        "CREATE TABLE back (id bigint, body text);"
        " INSERT INTO back SELECT i, repeat(md5(i::text), i % 40) FROM generate_series(1, 20000) i",
    )
    columns = [TargetColumn("id", "bigint"), TargetColumn("body", "text")]
    target = MigrateTarget.open(pg_database)
    try:
        for rows in (0, 1, 2, 5, 4095, 4096, 4097, 20000):
            target.execute(
                f"CREATE TABLE back_{rows} AS SELECT * FROM back WHERE id <= {rows}", "t"
            )
            expected = 0
            with target.conn.cursor() as cur, cur.copy(f"COPY back_{rows} TO STDOUT") as copy:
                for line in copy:
                    expected += int.from_bytes(
                        hashlib.md5(bytes(line)[:-1], usedforsecurity=False).digest()[:8],
                        "big",
                        signed=True,
                    )
            relation = QName("public", f"back_{rows}")
            assert target.digest(relation, columns) == (rows, expected)
            assert target.query("SELECT 1") == [(1,)]
        # A COPY the server fails midway still fails, and the session stays usable.
        target.execute("SET statement_timeout = '1ms'", "a timeout")
        with pytest.raises(ClientError, match="QueryCanceled"):
            target.digest(QName("public", "back_20000"), columns)
        target.execute("RESET statement_timeout", "no timeout")
        assert target.query("SELECT 1") == [(1,)]
    finally:
        target.close()
