"""Which Redis settings differ on which node: desired spec values vs CONFIG GET. Pure.

Redis answers CONFIG GET in its own canonical form, not as the admin wrote the value:
`maxmemory 2gb` reads back as `2147483648`, `allkeys-LRU` as `allkeys-lru`, `KEA` as `AKE`.
Comparing the raw strings would CONFIG SET the same value on every pass, so both sides are
normalized the way Redis parses them before they are compared:

- every whitespace-separated token that is a number with a memory unit is converted to bytes
  with Redis's units (api/quantity.py: k=1000, kb=1024, m=1000^2, mb=1024^2, ...); plain
  numbers stay numbers, so this is harmless for non-memory settings;
- everything else is compared case-insensitively (Redis enums and yes/no are);
- `notify-keyspace-events` is compared as a set of flags, with `A` expanded to what it stands for.

After a CONFIG SET the reconciler reads the value back through the same normalization; a value
that still differs is reported instead of being re-sent forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lokifi_storage.api.quantity import QuantityError, parse_redis_memory

__all__ = ["NodeSettingsPlan", "normalize", "plan_node_settings", "same_value"]

# Redis 7 server.h: NOTIFY_ALL = g$lshzxetd ('A'); K, E, m (key miss), n (new key) are separate.
_NOTIFY_ALL = frozenset("g$lshzxetd")


def _token(token: str) -> str:
    if token[:1].isdigit():
        try:
            return str(parse_redis_memory(token))
        except QuantityError:
            pass
    return token.lower()


def _keyspace_flags(value: str) -> frozenset[str]:
    flags = set(value.strip())
    if "A" in flags:
        flags.discard("A")
        flags |= _NOTIFY_ALL
    return frozenset(flags)


def normalize(key: str, value: str) -> str:
    """The canonical text of `value` for `key`, as comparable with CONFIG GET's answer."""
    if key == "notify-keyspace-events":
        return "".join(sorted(_keyspace_flags(value)))
    return " ".join(_token(token) for token in value.split())


def same_value(key: str, desired: str, current: str) -> bool:
    """True when setting `desired` would leave `current` unchanged."""
    return normalize(key, desired) == normalize(key, current)


@dataclass(frozen=True)
class NodeSettingsPlan:
    """What to do on one node: settings to CONFIG SET (spec values as written) and keys the
    node does not know (an older Redis), which are reported instead of being sent."""

    node: str
    to_set: tuple[tuple[str, str], ...]
    unknown: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.to_set and not self.unknown


def plan_node_settings(
    node: str, desired: Mapping[str, str], current: Mapping[str, str]
) -> NodeSettingsPlan:
    """Settings of `desired` that differ on `node`, in the spec's key order."""
    to_set: list[tuple[str, str]] = []
    unknown: list[str] = []
    for key, value in desired.items():
        if key not in current:
            unknown.append(key)
        elif not same_value(key, value, current[key]):
            to_set.append((key, value))
    return NodeSettingsPlan(node=node, to_set=tuple(to_set), unknown=tuple(unknown))
