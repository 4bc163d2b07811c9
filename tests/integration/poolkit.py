"""The process's PostgreSQL pools with a lower bound for one test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lokifi_storage.clients.postgres import pool as pg_pool
from lokifi_storage.clients.postgres.pool import PoolSettings


@contextmanager
def bounded_pools(max_per_server: int, wait_seconds: float) -> Iterator[pg_pool.ServerPools]:
    """The pools bounded at `max_per_server` while the block runs, the defaults again after it
    (closing the bounded ones' idle connections): the bound is process-wide, and left lower it
    would starve later tests that take spare sessions."""
    pools = pg_pool.configure(
        PoolSettings(max_per_server=max_per_server, wait_seconds=wait_seconds)
    )
    try:
        yield pools
    finally:
        pg_pool.configure(PoolSettings())
