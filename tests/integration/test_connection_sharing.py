"""Connections shared across resources and bounded per server, on the stack's real servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from poolkit import bounded_pools

from lokifi_storage.clients import redis as redis_client
from lokifi_storage.clients.errors import ConnectionFailed
from lokifi_storage.clients.postgres import pool as pg_pool
from lokifi_storage.clients.postgres.partitions import open_partition_database
from lokifi_storage.clients.postgres.probe import open_primary
from lokifi_storage.clients.redis import RedisNodes
from stackfixtures import (
    PgDatabase,
    StackEnv,
    create_database,
    drop_database,
    unique_name,
)


@pytest.fixture
def pools() -> Iterator[pg_pool.ServerPools]:
    """The process's pools bounded at 3 per server for the test."""
    with bounded_pools(max_per_server=3, wait_seconds=20) as pools:
        yield pools


def backends(db: PgDatabase) -> int:
    """Sessions of the operator's application name on this test's database."""
    with psycopg.connect(db.primary_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'lokifi-storage-operator'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_many_reconciles_of_one_server_reuse_one_connection(
    pg_database: PgDatabase, pools: pg_pool.ServerPools
) -> None:
    for _ in range(50):
        with open_primary(pg_database.primary_url) as probe:
            probe.observe()
        with open_partition_database(pg_database.primary_url) as db:
            db.query("SELECT 1")
    assert pools.connects == 1
    assert pools.reuses == 99
    assert backends(pg_database) == 1


def test_connections_to_one_server_never_exceed_the_bound(
    pg_database: PgDatabase, pools: pg_pool.ServerPools
) -> None:
    peak = 0
    lock = threading.Lock()

    def one(_: int) -> None:
        nonlocal peak
        with open_partition_database(pg_database.primary_url) as db:
            db.query("SELECT pg_sleep(0.05)")
            with lock:
                peak = max(peak, backends(pg_database))

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(one, range(36)))
    assert peak == 3
    assert pools.open_connections(*_host_port(pg_database)) <= 3


def test_all_connections_busy_too_long_fails_naming_the_limit(
    pg_database: PgDatabase,
) -> None:
    with (
        bounded_pools(max_per_server=1, wait_seconds=0.2),
        open_partition_database(pg_database.primary_url),
        pytest.raises(ConnectionFailed, match=r"all 1 connections .* stayed busy"),
        open_partition_database(pg_database.primary_url),
    ):
        pass


def test_a_connection_comes_back_as_a_fresh_one(
    pg_database: PgDatabase, pools: pg_pool.ServerPools
) -> None:
    with open_partition_database(pg_database.primary_url) as db:
        db.conn.execute("SET statement_timeout = 1234")
        db.query("SELECT pg_advisory_lock(4242)")
    with open_partition_database(pg_database.primary_url) as db:
        assert db.query("SHOW statement_timeout") == [("0",)]
        assert db.query("SHOW TimeZone") == [("UTC",)]
        # the lock taken by the previous user is free
        held = db.query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert held == [(0,)]  # other databases' advisory locks on the shared server aside
    assert pools.connects == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_silently(
    pg_database: PgDatabase, pools: pg_pool.ServerPools
) -> None:
    with open_partition_database(pg_database.primary_url) as db:
        pid = db.query("SELECT pg_backend_pid()")[0][0]
    with psycopg.connect(pg_database.primary_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)
    with open_partition_database(pg_database.primary_url) as db:
        assert db.query("SELECT 1") == [(1,)]
    assert pools.connects == 2


def test_redis_nodes_of_many_reconciles_share_one_connection_per_node(stack: StackEnv) -> None:
    host, port = stack.redis_nodes[0]
    for _ in range(30):
        with RedisNodes(stack.redis_password) as nodes:
            nodes.node(host, port).ping()
    shared = redis_client._shared_client(host, port, None, stack.redis_password)
    pool = shared.connection_pool
    assert len(pool._connections) == 1  # type: ignore[attr-defined]


def _host_port(db: PgDatabase) -> tuple[str, str]:
    info = psycopg.conninfo.conninfo_to_dict(db.primary_url)
    return str(info.get("host")), str(info.get("port"))


def test_idle_connections_to_other_databases_give_way_so_the_bound_holds_open_ones_too(
    stack: StackEnv, request: pytest.FixtureRequest, pools: pg_pool.ServerPools
) -> None:
    """Resources with their own databases on one server: each database's connection idles in
    the pool after its pass, and the next database's pass closes the one idle longest instead
    of opening a fourth session beside three idle ones."""
    names = [unique_name(f"{request.node.name}_{n}", 63) for n in range(5)]
    databases = [create_database(stack, name) for name in names]
    try:
        for db in databases:  # five passes, one per database, one after the other
            with open_primary(db.primary_url) as probe:
                probe.observe()
            assert pools.open_connections(*_host_port(db)) <= 3
        assert pools.connects == 5
        with psycopg.connect(stack.pg_primary_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_stat_activity"
                " WHERE application_name = 'lokifi-storage-operator' AND datname = ANY(%s)",
                (names,),
            ).fetchall()
        assert sorted(row[0] for row in rows) == sorted(names[2:])  # the oldest two went
        with open_primary(databases[4].primary_url) as probe:  # the newest is still reused
            probe.observe()
        assert pools.connects == 5
    finally:
        for name in names:
            drop_database(stack, name)
