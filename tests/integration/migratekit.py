"""SQLite files shaped like the app's, built by the migrate tests, and the CLI run on them."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import yaml

CLI = Path(sys.executable).with_name("lokifi-storage")
UTC = dt.UTC

# The tests' "now": months before December 2024 are past archive.afterDays 365.
NOW = "2025-12-15T00:00:00+00:00"

APP_SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    is_active BOOLEAN,
    created_at DATETIME
);
CREATE TABLE ai_threads (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    title TEXT,
    created_at DATETIME
);
CREATE TABLE ai_messages (
    id INTEGER PRIMARY KEY,
    thread_id INTEGER NOT NULL REFERENCES ai_threads(id),
    user_id INTEGER NOT NULL,
    role VARCHAR(20) NOT NULL,
    content TEXT NOT NULL,
    tokens INTEGER,
    metadata JSON,
    created_at DATETIME
);
CREATE INDEX ix_ai_messages_thread ON ai_messages(thread_id);
"""

START = dt.datetime(2023, 1, 1, tzinfo=UTC)
SPAN = dt.timedelta(days=3 * 365)


def message_time(i: int, n: int) -> Any:
    """Message i's created_at in one of the four ways the app wrote it over the years."""
    instant = START + SPAN * (i / n)
    kind = i % 4
    if kind == 0:
        return int(instant.timestamp())
    if kind == 1:
        return int(instant.timestamp() * 1000)
    if kind == 2:
        return instant.strftime("%Y-%m-%d %H:%M:%S")
    return instant.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat()


def build_app_file(path: Path, messages: int, *, users: int = 50, threads: int = 200) -> Path:
    """users, ai_threads and `messages` ai_messages over three years."""
    conn = sqlite3.connect(path)
    conn.executescript(APP_SCHEMA)
    conn.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        [(i, f"user{i}@example.org", i % 2, "2023-01-01 00:00:00") for i in range(1, users + 1)],
    )
    conn.executemany(
        "INSERT INTO ai_threads VALUES (?, ?, ?, ?)",
        [(i, 1 + i % users, f"thread {i}", 1672531200 + i) for i in range(1, threads + 1)],
    )
    conn.executemany(
        "INSERT INTO ai_messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                i,
                1 + i % threads,
                1 + i % users,
                "user" if i % 2 else "assistant",
                f"message {i}\twith a tab\nand a newline " * (1 + i % 3),
                i % 900,
                json.dumps({"model": "lokifi-7b", "latency_ms": i % 1500, "n": i}),
                message_time(i, messages),
            )
            for i in range(1, messages + 1)
        ),
    )
    conn.commit()
    conn.close()
    return path


def resource(path: Path, tables: list[dict[str, Any]]) -> Path:
    doc = {
        "apiVersion": "storage.lokifi.ai/v1alpha1",
        "kind": "LokifiStorage",
        "metadata": {"name": "demo"},
        "spec": {
            "postgres": {"primary": {"secretRef": {"name": "db", "key": "url"}}, "tables": tables}
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return path


MESSAGES_TABLE: dict[str, Any] = {
    "name": "ai_messages",
    "partitionBy": {"column": "created_at", "interval": "month"},
    "subpartitionBy": {"column": "user_id", "rangeSize": 25, "count": 2},
    "indexes": [
        {
            "name": "idx_ai_messages_user_thread_time",
            "columns": ["user_id", "thread_id", "created_at DESC"],
        }
    ],
    "archive": {"afterDays": 365, "schema": "archive"},
}


def migrate_argv(sqlite_file: Path, manifest: Path, *extra: str) -> list[str]:
    return [
        str(CLI),
        "migrate",
        "sqlite",
        str(sqlite_file),
        "-f",
        str(manifest),
        "--now",
        NOW,
        *extra,
    ]


def migrate_env(url: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOKIFI_PRIMARY_URL": url}


def run_migrate(
    url: str, sqlite_file: Path, manifest: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        migrate_argv(sqlite_file, manifest, *extra),
        env={**migrate_env(url), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def query(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        cursor = conn.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


def tables_in(url: str) -> list[str]:
    return [
        f"{schema}.{name}"
        for schema, name in query(
            url,
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
        )
    ]


def build_samples_file(path: Path) -> Path:
    """One row per value kind the converters handle (and 2000 random floats): `samples`."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE samples (id INTEGER PRIMARY KEY, at DATETIME, flag BOOLEAN, doc JSON,"
        " data BLOB, note TEXT, ratio REAL, amount NUMERIC, day DATE, untyped)"
    )
    rows = [
        (
            1,
            "2024-03-05 10:11:12",
            1,
            '{"b": 2, "a": [1.50, 1e2]}',
            b"\x00\xff",
            "tab\there",
            0.1,
            "1.50",
            "2024-03-05",
            7,
        ),
        (
            2,
            "2024-03-05T10:11:12Z",
            0,
            '{"ccc": {"é": "\\u00e9\\n"}, "dd": null}',
            b"",
            "new\nline\\",
            1e15,
            3,
            "2024-02-29",
            "x",
        ),
        (
            3,
            "2024-03-05T15:41:12+05:30",
            "true",
            "[true, false, -0, 0.000001]",
            b"abc",
            "héllo",
            -0.0,
            2.5,
            None,
            1.5,
        ),
        (
            4,
            1709633472,
            "no",
            '"just a string"',
            None,
            "bell\x07 bs\x08 ff\x0c vt\x0b cr\r",  # COPY TO names \b \f \v: same digest
            1e-05,
            None,
            None,
            None,
        ),
        (5, 1709633472123, "1", "42", b"\x01", "", 123456789012345.0, "-0.0", None, b"\x02"),
        (
            6,
            1709633472.25,
            "off",
            '{"a":1,"a":2}',
            b"z",
            "x" * 3000,
            float("inf"),
            "12345678901234567890.123",
            None,
            None,
        ),
    ]
    conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    generator = random.Random(16)
    floats = [
        generator.random() * 10 ** generator.randint(-12, 20) * generator.choice((1, -1))
        for _ in range(2000)
    ]
    conn.executemany(
        "INSERT INTO samples (id, ratio, at) VALUES (?, ?, ?)",
        [(100 + i, f, 1600000000 + i * 3600) for i, f in enumerate(floats)],
    )
    conn.commit()
    conn.close()
    return path
