"""The Redis Cluster's shape, read from the text of CLUSTER NODES and CLUSTER INFO. Pure.

Parsing lives here, not in the client, so the rules (which nodes count, which flags mean
trouble) are unit-tested against recorded server output without a cluster.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["ClusterInfo", "ClusterNode", "parse_cluster_info", "parse_cluster_nodes"]


@dataclass(frozen=True)
class ClusterNode:
    """One line of CLUSTER NODES."""

    node_id: str
    host: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    link_state: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags or "replica" in self.flags

    @property
    def failing(self) -> bool:
        """Flagged failed (or suspected by the node that answered), or its link is down."""
        return bool({"fail", "fail?"} & self.flags) or self.link_state != "connected"

    @property
    def addressable(self) -> bool:
        """A node without an address (noaddr, handshake) cannot be connected to."""
        return bool(self.host) and self.port > 0 and not ({"noaddr", "handshake"} & self.flags)


@dataclass(frozen=True)
class ClusterInfo:
    """The fields of CLUSTER INFO that say whether the cluster serves every slot."""

    state: str
    slots_assigned: int
    slots_ok: int
    slots_pfail: int
    slots_fail: int
    known_nodes: int


def _address(field: str) -> tuple[str, int]:
    # ip:port@cport[,hostname]; IPv6 addresses contain colons, so split at the last one.
    hostport = field.split(",", 1)[0].split("@", 1)[0]
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    try:
        return host, int(port)
    except ValueError:
        return host, 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parse_cluster_nodes(text: str, asked: str | None = None) -> list[ClusterNode]:
    """Every node of CLUSTER NODES output, in the order given.

    A node that has not yet met another one does not know its own IP and lists itself as
    `:port@cport`; `asked` (the host the command was sent to) fills that in for the `myself`
    line, as redis-cli does, so a lone or freshly created node is still addressable.

    A cluster formed over loopback lists every node at 127.0.0.1. Nodes that meet over loopback
    share one machine, so when that machine was reached at another address (`asked`, e.g. a
    Pod reaching its host's cluster at the host's address), every such node is addressed there:
    127.0.0.1 would be the asker's own loopback."""
    remap_loopback = bool(asked) and not _loopback(asked or "")
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        host, port = _address(fields[1])
        if asked and (
            (not host and "myself" in fields[2].split(","))
            or (remap_loopback and host and _loopback(host))
        ):
            host = asked
        nodes.append(
            ClusterNode(
                node_id=fields[0],
                host=host,
                port=port,
                flags=frozenset(fields[2].split(",")) - {"myself"},
                master_id=None if fields[3] == "-" else fields[3],
                link_state=fields[7],
            )
        )
    return nodes


def parse_cluster_info(text: str) -> ClusterInfo:
    """The slot counters and state of CLUSTER INFO output."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            values[key] = value

    def number(key: str) -> int:
        try:
            return int(values.get(key, "0"))
        except ValueError:
            return 0

    return ClusterInfo(
        state=values.get("cluster_state", "unknown"),
        slots_assigned=number("cluster_slots_assigned"),
        slots_ok=number("cluster_slots_ok"),
        slots_pfail=number("cluster_slots_pfail"),
        slots_fail=number("cluster_slots_fail"),
        known_nodes=number("cluster_known_nodes"),
    )
