"""Connections to PostgreSQL shared by every resource of the process, bounded per server.

One operator serving 1,000 resources that all point at one server would otherwise connect and
disconnect for every probe of every reconcile (a backend process forked each time), and the
number of connections open at once would grow with the workers and the parts run in parallel,
not with anything the server's admin chose. Here:

- connections are kept idle per URL (the credentials are part of the key: two resources share a
  connection only when they would have opened the very same one) and reused by the next
  reconcile that asks for that URL;
- the connections open to one server (host and port, whatever the database or user) never
  exceed `max_per_server`, busy or idle: a checkout that must connect while the bound is full
  of idle connections to other URLs (other databases or users of the server) closes the one
  idle longest first, so 1,000 resources with their own databases on one server hold at most
  `max_per_server` sessions there, not one per database until each idles out; a reconcile
  that finds them all busy waits up to `wait_seconds` and then fails with ConnectionFailed
  naming the limit, like any unreachable server;
- a connection goes back to the pool only clean: outside a transaction, its session settings
  reset (`RESET ALL`) and any session-level advisory lock released; otherwise it is closed.
  Idle connections older than `idle_seconds` are closed on the next checkout.

The URL is a dictionary key and handed to libpq, never formatted into a message or log line.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from lokifi_storage.clients.errors import ClientError, ConnectionFailed

__all__ = ["PoolSettings", "ServerPools", "configure", "pools"]

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
Connect = Callable[[], tuple[Conn, Any]]


@dataclass(frozen=True)
class PoolSettings:
    """How many connections one server may get from this process, and how long they idle."""

    max_per_server: int = 10
    idle_seconds: float = 30.0
    wait_seconds: float = 30.0


@dataclass
class _Server:
    slots: threading.BoundedSemaphore
    open: int = 0
    idle: dict[str, list[tuple[Conn, Any, float]]] = field(default_factory=dict)


class ServerPools:
    """Idle connections per URL and a bound per server; thread-safe."""

    def __init__(self, settings: PoolSettings | None = None) -> None:
        self.settings = settings or PoolSettings()
        self._servers: dict[tuple[str, str], _Server] = {}
        self._lock = threading.Lock()
        self.connects = 0  # new connections opened (for tests and benchmarks)
        self.reuses = 0

    def _server(self, key: tuple[str, str]) -> _Server:
        with self._lock:
            server = self._servers.get(key)
            if server is None:
                server = _Server(threading.BoundedSemaphore(self.settings.max_per_server))
                self._servers[key] = server
            return server

    def open_connections(self, host: str, port: str) -> int:
        """Connections this process holds to `host:port` now, busy or idle."""
        with self._lock:
            server = self._servers.get((host, port))
            return server.open if server else 0

    @contextlib.contextmanager
    def connection(
        self, url: str, server_key: tuple[str, str], connect: Connect, what: str
    ) -> Iterator[tuple[Conn, Any]]:
        """A connection to `url` (opened with `connect` when none is idle), returned after use.

        `what` names the server in the error raised when every slot stays busy.
        """
        server = self._server(server_key)
        if not server.slots.acquire(timeout=self.settings.wait_seconds):
            raise ConnectionFailed(
                f"{what}: all {self.settings.max_per_server} connections this operator allows"
                f" to {server_key[0]}:{server_key[1]} stayed busy for"
                f" {self.settings.wait_seconds:.0f}s"
            )
        with self._checked_out(server, url, connect) as taken:
            yield taken

    @contextlib.contextmanager
    def spare(
        self, url: str, server_key: tuple[str, str], connect: Connect
    ) -> Iterator[tuple[Conn, Any] | None]:
        """A second connection for work that can also be done on one: taken only if a slot
        is free now (None otherwise, never waited for), within the same bound per server."""
        server = self._server(server_key)
        if not server.slots.acquire(blocking=False):
            yield None
            return
        with contextlib.ExitStack() as stack:
            spare: tuple[Conn, Any] | None = None
            with contextlib.suppress(ClientError):  # e.g. the server's own connection limit
                spare = stack.enter_context(self._checked_out(server, url, connect))
            yield spare

    @contextlib.contextmanager
    def _checked_out(
        self, server: _Server, url: str, connect: Connect
    ) -> Iterator[tuple[Conn, Any]]:
        """The connection of a slot already taken; the slot is released afterwards."""
        conn: Conn | None = None
        target: Any = None
        try:
            conn, target = self._take_idle(server, url)
            if conn is None:
                self._make_room(server)
                try:
                    conn, target = connect()
                except BaseException:
                    with self._lock:
                        server.open -= 1
                    raise
                with self._lock:
                    self.connects += 1
            else:
                with self._lock:
                    self.reuses += 1
            yield conn, target
        finally:
            if conn is not None:
                self._give_back(server, url, conn, target)
            server.slots.release()

    def _take_idle(self, server: _Server, url: str) -> tuple[Conn | None, Any]:
        now = time.monotonic()
        stale: list[Conn] = []
        found: tuple[Conn | None, Any] = (None, None)
        with self._lock:
            for key, idle in list(server.idle.items()):
                fresh = [e for e in idle if now - e[2] <= self.settings.idle_seconds]
                stale += [e[0] for e in idle if now - e[2] > self.settings.idle_seconds]
                server.idle[key] = fresh
            idle = server.idle.get(url) or []
            while idle:
                conn, target, _ = idle.pop()
                if not _alive(conn):
                    stale.append(conn)
                    continue
                found = (conn, target)
                break
            server.open -= len(stale)
        for conn in stale:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        return found

    def _make_room(self, server: _Server) -> None:
        """Close idle connections, longest idle first, until one more fits in the bound, and
        count that one as open already (the caller connects next, or gives it back on failure):
        two threads connecting at once must not both see the last free place.

        The caller holds a slot and has no connection yet, so at most `max_per_server - 1`
        connections are busy or about to open: while the bound is full, one of them is idle."""
        evicted: list[Conn] = []
        with self._lock:
            while server.open >= self.settings.max_per_server:
                oldest = min(
                    ((e[2], key) for key, idle in server.idle.items() for e in idle),
                    default=None,
                )
                if oldest is None:
                    break
                idle = server.idle[oldest[1]]
                index = min(range(len(idle)), key=lambda i: idle[i][2])
                evicted.append(idle.pop(index)[0])
                server.open -= 1
            server.open += 1
        for conn in evicted:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _give_back(self, server: _Server, url: str, conn: Conn, target: Any) -> None:
        if _reset(conn):
            with self._lock:
                server.idle.setdefault(url, []).append((conn, target, time.monotonic()))
            return
        with contextlib.suppress(psycopg.Error):
            conn.close()
        with self._lock:
            server.open -= 1

    def close(self) -> None:
        """Close every idle connection (busy ones close when given back)."""
        with self._lock:
            idle = [e[0] for s in self._servers.values() for lst in s.idle.values() for e in lst]
            for server in self._servers.values():
                server.open -= sum(len(lst) for lst in server.idle.values())
                server.idle.clear()
        for conn in idle:
            with contextlib.suppress(psycopg.Error):
                conn.close()


def _alive(conn: Conn) -> bool:
    """False when the server closed an idle connection (restart, termination, DROP DATABASE
    WITH (FORCE)): its socket is then readable (the error and EOF) although no query is out."""
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _reset(conn: Conn) -> bool:
    """Make `conn` as a fresh connection would be; False when it cannot be (close it)."""
    if conn.closed or conn.broken or not conn.autocommit:
        return False
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return False
    try:  # one round trip: a statement without parameters goes as one simple query
        conn.execute("RESET ALL; SELECT pg_advisory_unlock_all()")
    except psycopg.Error:
        return False
    return True


_pools = ServerPools()


def pools() -> ServerPools:
    """The process's pools (the operator configures them once at start)."""
    return _pools


def configure(settings: PoolSettings) -> ServerPools:
    """Replace the process's pools (closing the idle connections of the old ones)."""
    global _pools
    old, _pools = _pools, ServerPools(settings)
    old.close()
    return _pools
