"""Replica wiring against the local stack's real primary and streaming replica.

Each test probes a fresh database (the `pg_database` fixture) on both servers. Tests that break
the replica (stop it, pause its replay) restore it in a `finally`, because other tests share it.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import PostgresSpec
from lokifi_storage.clients.postgres.probe import open_primary
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.reconcile.replicas import ReplicaWiring, reconcile_replicas
from stackfaults import stopped_pg_replica
from stackfixtures import PgDatabase

DRIVER = "postgresql+asyncpg"


def _spec(max_lag: float = 30) -> PostgresSpec:
    return PostgresSpec.model_validate(
        {
            "primary": {"secretRef": {"name": "lokifi-db", "key": "url"}},
            "replicas": [
                {
                    "name": "replica-1",
                    "secretRef": {"name": "lokifi-db-replica-1", "key": "url"},
                    "maxLagSeconds": max_lag,
                }
            ],
            "pool": {"size": 7, "maxOverflow": 8, "timeoutSeconds": 9, "recycleSeconds": 10},
            "connectionSecret": {"name": "lokifi-db-conn", "driver": DRIVER},
        }
    )


def _as_driver(url: str) -> str:
    return DRIVER + url[url.index("://") :]


def _with_password(url: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _everything_reported(wiring: ReplicaWiring) -> str:
    """Every text this part hands out except the Secret data: conditions, status, messages."""
    return json.dumps(
        {
            "primary": wiring.primary_report.condition.model_dump(),
            "replicas": wiring.replicas_report.condition.model_dump(),
            "status": status_json(wiring.replicas_report.status),
            "actions": wiring.replicas_report.actions,
            "verdicts": [v.message for v in wiring.replicas],
            "primary_obs": repr(wiring.primary),
        }
    )


def _wait_replayed(db: PgDatabase) -> None:
    """Until the replica has replayed everything the primary wrote so far."""
    with psycopg.connect(db.primary_url, autocommit=True) as primary:
        row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        position = row[0]
    deadline = time.monotonic() + 30
    with psycopg.connect(db.replica_url, autocommit=True) as replica:
        while True:
            done = replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (position,)
            ).fetchone()
            if done and done[0]:
                return
            assert time.monotonic() < deadline, "replica did not catch up within 30s"
            time.sleep(0.05)


@contextmanager
def _replay_paused(db: PgDatabase) -> Iterator[None]:
    with psycopg.connect(db.replica_url, autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")


def _write_on_primary(db: PgDatabase) -> None:
    with psycopg.connect(db.primary_url, autocommit=True) as primary:
        primary.execute("CREATE TABLE IF NOT EXISTS lag_probe (at timestamptz)")
        primary.execute("INSERT INTO lag_probe VALUES (now())")


def test_a_streaming_replica_is_healthy_and_named_in_the_secret(pg_database: PgDatabase) -> None:
    db = pg_database
    wiring = reconcile_replicas(_spec(), db.primary_url, {"replica-1": db.replica_url})

    assert wiring.primary_report.condition.status == "True"
    assert wiring.replicas_report.condition.status == "True"
    [replica] = status_json(wiring.replicas_report.status)["replicas"]
    assert replica["name"] == "replica-1"
    assert replica["healthy"] is True
    assert replica["streaming"] is True
    assert 0 <= replica["lagSeconds"] <= 30
    data = wiring.replicas_report.secret_data
    assert data["DATABASE_URL"] == _as_driver(db.primary_url)
    assert data["DATABASE_REPLICA_URL"] == _as_driver(db.replica_url)
    assert data["DATABASE_REPLICA_URLS"] == _as_driver(db.replica_url)
    assert (
        data["DATABASE_POOL_SIZE"],
        data["DATABASE_MAX_OVERFLOW"],
        data["DATABASE_POOL_TIMEOUT"],
        data["DATABASE_POOL_RECYCLE"],
    ) == ("7", "8", "9", "10")


def test_a_caught_up_replica_has_no_lag_on_an_idle_primary(pg_database: PgDatabase) -> None:
    # Nothing is written to this database; with a naive now() - last replay timestamp the lag
    # would exceed the 1s limit after this sleep although the replica is current.
    db = pg_database
    _write_on_primary(db)
    _wait_replayed(db)
    time.sleep(1.5)

    wiring = reconcile_replicas(_spec(max_lag=1), db.primary_url, {"replica-1": db.replica_url})

    [replica] = status_json(wiring.replicas_report.status)["replicas"]
    assert replica["healthy"] is True, wiring.replicas_report.condition.message
    assert replica["lagSeconds"] <= 1


def test_a_stopped_replica_is_left_out_and_reads_fall_back_to_the_primary(
    pg_database: PgDatabase,
) -> None:
    db = pg_database
    with stopped_pg_replica():
        wiring = reconcile_replicas(_spec(), db.primary_url, {"replica-1": db.replica_url})

    [replica] = status_json(wiring.replicas_report.status)["replicas"]
    assert replica["healthy"] is False
    assert replica["reason"] == Reason.REPLICA_UNREACHABLE
    condition = wiring.replicas_report.condition
    assert (condition.status, condition.reason) == ("False", Reason.REPLICA_UNREACHABLE)
    assert "replica-1" in condition.message
    data = wiring.replicas_report.secret_data
    assert data["DATABASE_REPLICA_URL"] == _as_driver(db.primary_url)
    assert data["DATABASE_REPLICA_URLS"] == _as_driver(db.primary_url)
    assert wiring.primary_report.condition.status == "True"


def test_a_replica_with_paused_replay_is_left_out_until_replay_resumes(
    pg_database: PgDatabase,
) -> None:
    db = pg_database
    spec = _spec(max_lag=1)
    _write_on_primary(db)
    _wait_replayed(db)

    with _replay_paused(db):
        _write_on_primary(db)
        time.sleep(1.5)
        paused = reconcile_replicas(spec, db.primary_url, {"replica-1": db.replica_url})
    _wait_replayed(db)
    resumed = reconcile_replicas(spec, db.primary_url, {"replica-1": db.replica_url})

    [lagging] = status_json(paused.replicas_report.status)["replicas"]
    assert lagging["healthy"] is False
    assert lagging["reason"] == Reason.REPLICA_LAGGING
    assert lagging["lagSeconds"] > 1
    assert "replay is paused" in paused.replicas_report.condition.message
    assert paused.replicas_report.secret_data["DATABASE_REPLICA_URL"] == _as_driver(db.primary_url)
    [replica] = status_json(resumed.replicas_report.status)["replicas"]
    assert replica["healthy"] is True, resumed.replicas_report.condition.message
    assert resumed.replicas_report.secret_data["DATABASE_REPLICA_URL"] == _as_driver(db.replica_url)


def test_a_wrong_replica_password_is_reported_without_any_password(
    pg_database: PgDatabase,
) -> None:
    db = pg_database
    wrong = "Wr0ng-Replica-Passw0rd"
    real = urllib.parse.urlsplit(db.replica_url).password
    assert real

    wiring = reconcile_replicas(
        _spec(), db.primary_url, {"replica-1": _with_password(db.replica_url, wrong)}
    )

    [replica] = status_json(wiring.replicas_report.status)["replicas"]
    assert (replica["healthy"], replica["reason"]) == (False, Reason.AUTHENTICATION_FAILED)
    condition = wiring.replicas_report.condition
    assert condition.reason == Reason.AUTHENTICATION_FAILED
    assert "authentication failed" in condition.message
    reported = _everything_reported(wiring)
    assert wrong not in reported
    assert real not in reported


def test_a_wrong_primary_password_fails_postgres_ready_without_any_password(
    pg_database: PgDatabase,
) -> None:
    db = pg_database
    wrong = "Wr0ng-Primary-Passw0rd"
    real = urllib.parse.urlsplit(db.primary_url).password
    assert real

    wiring = reconcile_replicas(
        _spec(), _with_password(db.primary_url, wrong), {"replica-1": db.replica_url}
    )

    condition = wiring.primary_report.condition
    assert (condition.status, condition.reason) == ("False", Reason.AUTHENTICATION_FAILED)
    reported = _everything_reported(wiring)
    assert wrong not in reported
    assert real not in reported
    # Without the primary the replica cannot be compared, but it still serves reads.
    [replica] = status_json(wiring.replicas_report.status)["replicas"]
    assert replica["healthy"] is True


def test_a_replica_whose_url_is_missing_names_its_secret(pg_database: PgDatabase) -> None:
    wiring = reconcile_replicas(_spec(), pg_database.primary_url, {})

    [replica] = status_json(wiring.replicas_report.status)["replicas"]
    assert (replica["healthy"], replica["reason"]) == (False, Reason.SECRET_NOT_FOUND)
    assert "lokifi-db-replica-1" in wiring.replicas_report.condition.message


def test_a_probe_of_the_primary_stats_no_file_of_the_database(
    pg_database: PgDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe runs in every pass of every resource on the database: pg_database_size (a
    stat() of every file of every relation, ~0.1 s at 30,000 relations) there made a round of
    N resources sharing one database cost the server N x N; nothing read the number."""
    with open_primary(pg_database.primary_url) as probe:
        sent: list[str] = []
        execute = probe._conn.execute

        def spy(query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(str(query))
            return execute(query, *args, **kwargs)

        monkeypatch.setattr(probe._conn, "execute", spy)
        observation = probe.observe()
    assert observation.reachable
    assert observation.server_version
    assert sent
    assert not [q for q in sent if "pg_database_size" in q]
