"""Read-only health probes of the PostgreSQL primary and its streaming replicas.

Kept apart from the partition client (partitions.py): these probes never write, use short
timeouts, and take one connection per server for the length of a probe (from the process's
shared pool, pool.py), so a slow or dead replica costs one connect timeout and nothing else.
The lag arithmetic is in domain/replica_health.py; this module only gathers the numbers it needs.

Error messages are built from host, port, database and user only (connection.py says how).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import AuthenticationFailed, ClientError
from lokifi_storage.clients.postgres.connection import (
    Target,
    describe_target,
    pooled_autocommit,
    translated,
)
from lokifi_storage.domain.replica_health import PrimaryObservation, ReplicaObservation

__all__ = ["PrimaryProbe", "observe_replica", "open_primary"]

STATEMENT_TIMEOUT_MS = 10_000
POLL_INTERVAL_SECONDS = 0.1


@contextmanager
def _connect(
    url: str, role: str
) -> Iterator[tuple[psycopg.Connection[tuple[object, ...]], Target]]:
    with (
        pooled_autocommit(url, role) as (conn, target),
        translated(f"{role} {target}", "probe query"),
    ):
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        yield conn, target


class PrimaryProbe:
    """An open connection to the primary, kept for the length of one reconcile.

    Its methods map driver errors themselves, so a primary lost in the middle of probing a
    replica is reported as the primary's failure, not the replica's.
    """

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], target: Target) -> None:
        self._conn = conn
        self.target = target

    def _one(self, query: str) -> tuple[object, ...]:
        with translated(f"primary {self.target}", "probe query"):
            row = self._conn.execute(query).fetchone()
        assert row is not None
        return row

    def observe(self) -> PrimaryObservation:
        """Recovery state and server version. Not the database's size: pg_database_size stats
        every file of every relation in the database (~0.1 s at 30,000 relations), and a probe
        runs in every pass of every resource pointing at the database, so a thousand resources
        with a schema each in one database paid it a thousand times per round for a number
        nothing read; the capacity part measures the size when `monitoring` asks for it."""
        in_recovery, version = self._one(
            "SELECT pg_is_in_recovery(), current_setting('server_version')"
        )
        return PrimaryObservation(
            target=str(self.target),
            reachable=True,
            in_recovery=bool(in_recovery),
            server_version=str(version),
        )

    def current_lsn(self) -> str | None:
        """The primary's current WAL write position; None when it is itself in recovery."""
        (lsn,) = self._one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END"
        )
        return None if lsn is None else str(lsn)


@contextmanager
def open_primary(url: str) -> Iterator[PrimaryProbe]:
    """Connect to the primary; raises the clients' error tree when it cannot."""
    with _connect(url, "primary") as (conn, target):
        yield PrimaryProbe(conn, target)


_REPLICA_SQL = """
SELECT pg_is_in_recovery(),
       EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8,
       (SELECT status FROM pg_stat_wal_receiver LIMIT 1),
       CASE WHEN %(p)s::pg_lsn IS NULL OR pg_last_wal_replay_lsn() IS NULL THEN NULL
            ELSE greatest(pg_wal_lsn_diff(%(p)s::pg_lsn, pg_last_wal_replay_lsn()), 0)::bigint
       END,
       CASE WHEN %(p)s::pg_lsn IS NULL OR pg_last_wal_replay_lsn() IS NULL THEN NULL
            ELSE pg_last_wal_replay_lsn() >= %(p)s::pg_lsn
       END
"""


def _replay_paused(conn: psycopg.Connection[tuple[object, ...]]) -> bool | None:
    try:
        row = conn.execute(
            "SELECT CASE WHEN pg_is_in_recovery()"
            " THEN pg_get_wal_replay_pause_state() <> 'not paused' END"
        ).fetchone()
    except pg_errors.InsufficientPrivilege:
        return None
    return None if row is None or row[0] is None else bool(row[0])


def observe_replica(
    name: str,
    url: str,
    primary_lsn: Callable[[], str | None] | None,
    catchup_wait: float,
) -> ReplicaObservation:
    """Probe one replica; every failure becomes an unreachable observation, never an exception.

    `primary_lsn` is called right before the first look so the position compared with is fresh;
    pass None when the primary is unreachable. When the replica is behind, it is polled for up
    to `catchup_wait` seconds (see domain/replica_health.py for why).
    """
    try:
        target = describe_target(url)
    except ClientError as error:
        return ReplicaObservation(
            name=name,
            target="(unparseable URL)",
            reachable=False,
            error_reason=Reason.REPLICA_UNREACHABLE,
            error_message=error.message,
        )
    try:
        with _connect(url, f"replica {name}") as (conn, _):
            position = _fresh_position(primary_lsn)
            started = time.monotonic()
            row = conn.execute(_REPLICA_SQL, {"p": position}).fetchone()
            assert row is not None
            in_recovery, age, receiver, behind, caught_up = row
            caught_up_after: float | None = 0.0 if caught_up else None
            waited = 0.0
            if position is not None and in_recovery and not caught_up:
                deadline = started + catchup_wait
                while time.monotonic() < deadline:
                    time.sleep(POLL_INTERVAL_SECONDS)
                    if _replayed_past(conn, position):
                        caught_up_after = time.monotonic() - started
                        break
                waited = time.monotonic() - started
                if caught_up_after is None:
                    row = conn.execute(_REPLICA_SQL, {"p": position}).fetchone()
                    assert row is not None
                    in_recovery, age, receiver, behind, _ = row
            paused = _replay_paused(conn)
    except ClientError as error:
        reason = (
            Reason.AUTHENTICATION_FAILED
            if isinstance(error, AuthenticationFailed)
            else Reason.REPLICA_UNREACHABLE
        )
        return ReplicaObservation(
            name=name,
            target=str(target),
            reachable=False,
            error_reason=reason,
            error_message=error.message,
        )
    return ReplicaObservation(
        name=name,
        target=str(target),
        reachable=True,
        in_recovery=bool(in_recovery),
        streaming=None if receiver is None else receiver == "streaming",
        replay_paused=paused,
        primary_position_known=position is not None,
        bytes_behind=None if behind is None else int(str(behind)),
        caught_up_after=caught_up_after,
        last_replay_age=None if age is None else float(str(age)),
        waited=waited,
    )


def _fresh_position(primary_lsn: Callable[[], str | None] | None) -> str | None:
    """The primary's position now; a primary lost mid-reconcile means "not known", not a
    failure of the replica being probed."""
    if primary_lsn is None:
        return None
    try:
        return primary_lsn()
    except ClientError:
        return None


def _replayed_past(conn: psycopg.Connection[tuple[object, ...]], position: str) -> bool:
    row = conn.execute(
        "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)", (position,)
    ).fetchone()
    return bool(row and row[0])
