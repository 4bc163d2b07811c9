"""The local stack's PostgreSQL is a real primary with a real streaming replica.

Later features (replica-lag status, reads routed to the replica) depend on replication really
happening, so this proves it end to end rather than trusting the stack's start-up.
"""

from __future__ import annotations

import time

import psycopg

from stackfixtures import PgDatabase


def _read_on_replica(url: str, marker: str, timeout: float = 10.0) -> str | None:
    """Poll the replica until replay brings the row (or the table) over, or give up."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            try:
                row = conn.execute(
                    "SELECT note FROM replication_probe WHERE note = %s", (marker,)
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                row = None
            if row is not None:
                return str(row[0])
            time.sleep(0.05)
    return None


def test_a_row_written_on_the_primary_is_readable_on_the_replica(pg_database: PgDatabase) -> None:
    marker = f"written-on-primary-{time.time_ns()}"
    with psycopg.connect(pg_database.primary_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE replication_probe (note text PRIMARY KEY)")
        conn.execute("INSERT INTO replication_probe (note) VALUES (%s)", (marker,))

    assert _read_on_replica(pg_database.replica_url, marker) == marker


def test_the_replica_is_in_recovery_and_refuses_writes(pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database.replica_url, autocommit=True) as conn:
        in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert in_recovery == (True,)
        try:
            conn.execute("CREATE TABLE must_not_exist (id int)")
        except psycopg.errors.ReadOnlySqlTransaction:
            return
    raise AssertionError("the replica accepted a write")


def test_the_partman_extension_is_available_on_the_primary(pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database.primary_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT name FROM pg_available_extensions WHERE name = 'pg_partman'"
        ).fetchone()
    assert row == ("pg_partman",)
