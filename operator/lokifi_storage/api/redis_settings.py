"""Which Redis settings a LokifiStorage may change with CONFIG SET, and which values they take.

The operator runs CONFIG SET with the admin's keys on every node of the cluster, so a key is a
capability. Allowed are the knobs of a cache: memory limit and eviction, expiry effort, lazy
freeing, client timeouts, keyspace notifications, slow-log and latency monitoring, encoding
thresholds and active defragmentation.

Never allowed, and why (Redis config keys are allow-listed, docs/api.md):
- Anything that names a file or directory (`dir`, `dbfilename`, `logfile`, `appendfilename`,
  `aclfile`, ...): CONFIG SET dir + dbfilename + SAVE is the classic way to write an arbitrary
  file as the redis user.
- Persistence (`save`, `appendonly`, `appendfsync`): how the cluster persists data belongs to
  whoever runs it, and a wrong value turns a cache node into a disk-bound one.
- Credentials and ACLs (`requirepass`, `masterauth`, `masteruser`): secrets must not live in a
  resource spec.
- Networking, TLS, modules, debug commands, replication topology and `cluster-*` settings:
  they change who can reach the node or how failover works, on every node at once. In
  particular `cluster-node-timeout` is left to the cluster's owner: a bad value on all nodes
  makes failovers flap cluster-wide.

Keys are compared in lower case exactly as written: Redis itself is case-insensitive, but a
spec that writes `MaxMemory` would never match what CONFIG GET returns, so the operator would
see drift forever.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from lokifi_storage.api.quantity import QuantityError, parse_redis_memory

Check = Callable[[str], "str | None"]


def _integer(low: int, high: int | None = None) -> Check:
    def check(value: str) -> str | None:
        if not re.fullmatch(r"-?[0-9]+", value):
            return f"{value!r} is not a whole number"
        number = int(value)
        if number < low or (high is not None and number > high):
            upper = f" and at most {high}" if high is not None else ""
            return f"{number} must be at least {low}{upper}"
        return None

    return check


def _choice(*choices: str) -> Check:
    def check(value: str) -> str | None:
        if value not in choices:
            return f"{value!r} is not one of {', '.join(choices)}"
        return None

    return check


_YES_NO: Final = _choice("yes", "no")


def _memory(value: str) -> str | None:
    try:
        parse_redis_memory(value)
    except QuantityError as err:
        return str(err)
    return None


_KEYSPACE_EVENT_FLAGS: Final = "KEg$lshzxetmdnA"


def _keyspace_events(value: str) -> str | None:
    unknown = sorted({char for char in value if char not in _KEYSPACE_EVENT_FLAGS})
    if unknown:
        return (
            f"unknown flag(s) {''.join(unknown)!r}; use the letters of {_KEYSPACE_EVENT_FLAGS} "
            "(e.g. Ex for expired-key events), or an empty string to turn notifications off"
        )
    return None


EVICTION_POLICIES: Final = (
    "volatile-lru",
    "allkeys-lru",
    "volatile-lfu",
    "allkeys-lfu",
    "volatile-random",
    "allkeys-random",
    "volatile-ttl",
    "noeviction",
)

ALLOWED_SETTINGS: Final[Mapping[str, Check]] = {
    # Memory and eviction
    "maxmemory": _memory,
    "maxmemory-policy": _choice(*EVICTION_POLICIES),
    "maxmemory-samples": _integer(1, 64),
    "maxmemory-eviction-tenacity": _integer(0, 100),
    "active-expire-effort": _integer(1, 10),
    # Lazy freeing
    "lazyfree-lazy-eviction": _YES_NO,
    "lazyfree-lazy-expire": _YES_NO,
    "lazyfree-lazy-server-del": _YES_NO,
    "lazyfree-lazy-user-del": _YES_NO,
    "lazyfree-lazy-user-flush": _YES_NO,
    "replica-lazy-flush": _YES_NO,
    # Clients
    "timeout": _integer(0),
    "tcp-keepalive": _integer(0),
    "maxclients": _integer(1),
    # Background work
    "hz": _integer(1, 500),
    "dynamic-hz": _YES_NO,
    # Observability
    "notify-keyspace-events": _keyspace_events,
    "slowlog-log-slower-than": _integer(-1),
    "slowlog-max-len": _integer(0),
    "latency-monitor-threshold": _integer(0),
    "latency-tracking": _YES_NO,
    # Encoding thresholds
    "hash-max-listpack-entries": _integer(0),
    "hash-max-listpack-value": _integer(0),
    "zset-max-listpack-entries": _integer(0),
    "zset-max-listpack-value": _integer(0),
    "set-max-intset-entries": _integer(0),
    "list-max-listpack-size": _integer(-5),
    "list-compress-depth": _integer(0),
    # Active defragmentation
    "activedefrag": _YES_NO,
    "active-defrag-ignore-bytes": _memory,
    "active-defrag-threshold-lower": _integer(0, 1000),
    "active-defrag-threshold-upper": _integer(0, 1000),
    "active-defrag-cycle-min": _integer(1, 99),
    "active-defrag-cycle-max": _integer(1, 99),
}

_FILES: Final = "names a file or directory on the Redis node"
_PERSISTENCE: Final = "changes persistence, which belongs to whoever runs the cluster"
_CREDENTIAL: Final = "is a credential; credentials come only from Secrets"
_TOPOLOGY: Final = "changes networking, replication or cluster topology on every node at once"
_CODE: Final = "loads code or enables debugging commands"

# Keys refused with a specific reason. Everything outside ALLOWED_SETTINGS is refused too; these
# get a better message, and the CRD's CEL rule names them explicitly.
FORBIDDEN_SETTINGS: Final[Mapping[str, str]] = {
    "dir": _FILES,
    "dbfilename": _FILES,
    "logfile": _FILES,
    "pidfile": _FILES,
    "appendfilename": _FILES,
    "appenddirname": _FILES,
    "aclfile": _FILES,
    "unixsocket": _FILES,
    "cluster-config-file": _FILES,
    "include": _FILES,
    "save": _PERSISTENCE,
    "appendonly": _PERSISTENCE,
    "appendfsync": _PERSISTENCE,
    "requirepass": _CREDENTIAL,
    "masterauth": _CREDENTIAL,
    "masteruser": _CREDENTIAL,
    "rename-command": _CODE,
    "loadmodule": _CODE,
    "enable-debug-command": _CODE,
    "enable-module-command": _CODE,
    "enable-protected-configs": _CODE,
    "protected-mode": _TOPOLOGY,
    "bind": _TOPOLOGY,
    "port": _TOPOLOGY,
    "replicaof": _TOPOLOGY,
    "slaveof": _TOPOLOGY,
    "cluster-enabled": _TOPOLOGY,
    "cluster-node-timeout": _TOPOLOGY,
}

MAX_SETTINGS: Final = 64


def setting_problem(key: str, value: str) -> str | None:
    """Why `key: value` may not be applied with CONFIG SET, or None when it may."""
    if key in FORBIDDEN_SETTINGS:
        return f"{key!r} is not allowed: it {FORBIDDEN_SETTINGS[key]}"
    check = ALLOWED_SETTINGS.get(key)
    if check is None:
        if key.lower() in ALLOWED_SETTINGS:
            return f"write the key in lower case: {key.lower()!r}"
        return (
            f"{key!r} is not an allowed setting; allowed are: {', '.join(sorted(ALLOWED_SETTINGS))}"
        )
    problem = check(value)
    return f"{key}: {problem}" if problem is not None else None


def normalize_setting_value(value: object) -> str:
    """YAML turns `yes` into true and `5` into 5; Redis wants the strings `yes` and `5`."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"a Redis setting value must be a string or a number, not {value!r}")
