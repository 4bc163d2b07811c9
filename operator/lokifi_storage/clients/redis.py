"""Talking to each node of a Redis Cluster directly: topology, CONFIG GET/SET/REWRITE, INFO.

Settings are per node (CONFIG SET is not forwarded by the cluster), so this client addresses
nodes one by one instead of going through a cluster-routing client. Connections have short
timeouts and no retry on a timeout: a dead node should cost one connect timeout, and the
reconciler then moves on to the next node.

Connections are shared by every resource of the process that addresses the same node with the
same credentials (one blocking pool per node, at most `max_per_node` connections, see
`configure_sharing`): 1,000 resources pointing at one cluster keep a handful of connections
open instead of connecting to every node on every reconcile. A pooled connection the node has
closed since (restart, timeout) fails with a connection error; that error alone is retried
once, on a new connection.

Every CONFIG SET sent is recorded in `config_set_log` as (node, key), so tests can prove that
a reconcile with nothing to change sends none, and that drift is repaired on the drifted node
only. Every write (CONFIG SET, CONFIG REWRITE, a claim taken or released) first asks
`before_write`, the leader's fence, which raises to refuse it. Error messages name the node and
key; the password is only handed to redis-py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lokifi_storage.clients.errors import (
    AuthenticationFailed,
    ClientError,
    ConnectionFailed,
    Refused,
)

__all__ = ["CLAIMS_KEY", "RedisNode", "RedisNodes", "configure_sharing"]

# The hash that records which LokifiStorage manages which setting of this cluster (one field
# per setting; domain/claims.py). A key of the cluster, so every operator reaching it sees it.
CLAIMS_KEY = "lokifi-storage:claims"

# Delete a hash field only while it still holds what we read: a claim taken over in between
# by another resource is not ours to remove.
_HDEL_IF = (
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
    "return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0"
)
_REDIRECT = re.compile(r"^(?:MOVED|ASK) \d+ (\S+):(\d+)")

SOCKET_TIMEOUT_SECONDS = 3.0
CONNECT_TIMEOUT_SECONDS = 2.0
POOL_WAIT_SECONDS = 30.0

_shared: dict[tuple[str, int, str | None, str | None], redis.Redis] = {}
_shared_lock = threading.Lock()
_max_per_node = 4


def configure_sharing(max_per_node: int) -> None:
    """Bound the connections to each node (applies to nodes first addressed afterwards)."""
    global _max_per_node
    _max_per_node = max_per_node


def _shared_client(host: str, port: int, username: str | None, password: str | None) -> redis.Redis:
    key = (host, port, username, password)
    with _shared_lock:
        client = _shared.get(key)
        if client is None:
            pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
                host=host,
                port=port,
                username=username,
                password=password,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                decode_responses=True,
                max_connections=_max_per_node,
                timeout=POOL_WAIT_SECONDS,
            )
            client = redis.Redis(connection_pool=pool)
            _shared[key] = client
        return client


_AUTH_MARKERS = ("NOAUTH", "WRONGPASS", "invalid password", "invalid username-password")


def _map(error: redis.RedisError, node: str, doing: str) -> ClientError:
    text = str(error)
    if isinstance(error, redis.AuthenticationError) or any(m in text for m in _AUTH_MARKERS):
        return AuthenticationFailed(f"Redis node {node}: authentication failed")
    if isinstance(error, redis.TimeoutError):
        return ConnectionFailed(f"Redis node {node}: unreachable (timed out during {doing})")
    if isinstance(error, redis.ConnectionError):
        return ConnectionFailed(f"Redis node {node}: unreachable (connection refused or lost)")
    # The server's own words (e.g. "argument(s) must be one of ...") are kept: they name the
    # key and the accepted values, never a credential (the keys are allow-listed).
    return Refused(f"Redis node {node}: {doing} refused: {text[:300]}")


def _allowed(what: str) -> None:
    """The default `before_write`: every write is allowed (no Lease behind it)."""


class RedisNode:
    """One node, one connection; every method raises the clients' error tree."""

    def __init__(
        self,
        address: str,
        conn: redis.Redis,
        log: list[tuple[str, str]],
        before_write: Callable[[str], None] = _allowed,
    ) -> None:
        self.address = address
        self._conn = conn
        self._log = log
        self._before_write = before_write

    def _call(self, doing: str, *args: Any) -> Any:
        try:
            return self._conn.execute_command(*args)  # type: ignore[no-untyped-call]
        except redis.RedisError as error:
            raise _map(error, self.address, doing) from error

    def ping(self) -> None:
        self._call("PING", "PING")

    def cluster_nodes(self) -> str:
        # "CLUSTER", "NODES" as two words: redis-py then returns the raw text instead of
        # its own parsed form, which domain/redis_topology.py reads.
        return str(self._call("CLUSTER NODES", "CLUSTER", "NODES"))

    def cluster_info(self) -> str:
        return str(self._call("CLUSTER INFO", "CLUSTER", "INFO"))

    def config_get(self, keys: Iterable[str]) -> dict[str, str]:
        """Current values of `keys` (a key the node does not know is simply absent)."""
        result: dict[str, str] = {}
        for key in keys:
            raw = self._call(f"CONFIG GET {key}", "CONFIG", "GET", key)
            pairs = (
                list(raw.items())
                if isinstance(raw, dict)
                else list(zip(raw[::2], raw[1::2], strict=True))
            )
            result.update((str(k), str(v)) for k, v in pairs if str(k) == key)
        return result

    def config_set(self, key: str, value: str) -> None:
        self._before_write(f"CONFIG SET {key} on Redis node {self.address}")
        self._log.append((self.address, key))
        self._call(f"CONFIG SET {key}", "CONFIG", "SET", key, value)

    def config_rewrite(self) -> None:
        self._before_write(f"CONFIG REWRITE on Redis node {self.address}")
        self._call("CONFIG REWRITE", "CONFIG", "REWRITE")

    def info(self, section: str) -> dict[str, str]:
        raw = self._call(f"INFO {section}", "INFO", section)
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        return dict(
            line.split(":", 1)
            for line in str(raw).splitlines()
            if ":" in line and not line.startswith("#")
        )


class RedisNodes:
    """The nodes of one cluster as one reconcile sees them; connections come from the shared
    pools (opened on first use, kept for the next reconcile)."""

    def __init__(
        self,
        password: str | None,
        *,
        username: str | None = None,
        before_write: Callable[[str], None] | None = None,
    ) -> None:
        self._password = password
        self._username = username
        self._before_write = before_write or _allowed
        self._nodes: dict[str, RedisNode] = {}
        self.config_set_log: list[tuple[str, str]] = []

    def node(self, host: str, port: int) -> RedisNode:
        address = f"{host}:{port}"
        if address not in self._nodes:
            conn = _shared_client(host, port, self._username, self._password)
            self._nodes[address] = RedisNode(address, conn, self.config_set_log, self._before_write)
        return self._nodes[address]

    def keyed(self, start: RedisNode, doing: str, *args: Any) -> Any:
        """A command on a key, sent to `start` and following the cluster's MOVED redirects
        (this client addresses nodes one by one; the key lives on its slot's master)."""
        node = start
        for _ in range(4):
            try:
                return node._conn.execute_command(*args)  # type: ignore[no-untyped-call]
            except redis.exceptions.AskError as error:  # MOVED (or ASK while resharding)
                node = self.node(str(error.host), int(error.port))
            except redis.ResponseError as error:
                moved = _REDIRECT.match(str(error))
                if moved is None:
                    raise _map(error, node.address, doing) from error
                node = self.node(moved.group(1), int(moved.group(2)))
            except redis.RedisError as error:
                raise _map(error, node.address, doing) from error
        raise Refused(f"Redis node {node.address}: {doing} redirected too often")

    def claims(self, start: RedisNode) -> dict[str, str]:
        """The claims hash: setting -> encoded claim."""
        raw = self.keyed(start, f"HGETALL {CLAIMS_KEY}", "HGETALL", CLAIMS_KEY)
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        return {str(k): str(v) for k, v in zip(raw[::2], raw[1::2], strict=True)}

    def claim(self, start: RedisNode, setting: str, encoded: str, *, replace: bool) -> bool:
        """Record a claim; without `replace` only when the setting has none (HSETNX)."""
        command = "HSET" if replace else "HSETNX"
        self._before_write(f"{command} {CLAIMS_KEY} {setting}")
        done = self.keyed(start, f"{command} {CLAIMS_KEY}", command, CLAIMS_KEY, setting, encoded)
        return bool(done) or replace

    def release(self, start: RedisNode, setting: str, encoded: str) -> bool:
        """Remove the claim of `setting` if it is still exactly `encoded`."""
        self._before_write(f"release of the claim of {setting} in {CLAIMS_KEY}")
        removed = self.keyed(
            start, f"release {CLAIMS_KEY}", "EVAL", _HDEL_IF, 1, CLAIMS_KEY, setting, encoded
        )
        return bool(removed)

    def close(self) -> None:
        """Forget the nodes; their connections stay in the shared pools."""
        self._nodes.clear()

    def __enter__(self) -> RedisNodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
