"""Redis Cluster settings: discover every node, CONFIG SET what differs, report the cluster.

observe (CLUSTER NODES / CLUSTER INFO from the first seed that answers, CONFIG GET and INFO on
every node) -> plan (domain/redis_config.py, per node) -> apply (CONFIG SET only the keys that
differ, read them back, CONFIG REWRITE where the node has a config file) -> report (RedisReady
and status.redis).

With apply off (`lokifi-storage plan`, spec.dryRun) the same observation and per-node plan run,
and each CONFIG SET is reported as a planned change (old -> new) instead of being sent.

Nodes are handled one by one and a failing node never stops the others: a node that is down
is reported while the settings still land on the rest, and are repaired on it by a later pass
once it is back. The password comes in as a parameter (the handler reads it from the Secret).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lokifi_storage.api import conditions
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.redis_settings import setting_problem
from lokifi_storage.api.spec import RedisSpec
from lokifi_storage.api.status import Condition, RedisStatus
from lokifi_storage.clients.errors import AuthenticationFailed, ClientError, ConnectionFailed
from lokifi_storage.clients.redis import RedisNode, RedisNodes
from lokifi_storage.domain.change_plan import Change, FieldChange
from lokifi_storage.domain.connection_secret import redis_entries
from lokifi_storage.domain.quantize import memory_for_status
from lokifi_storage.domain.redis_config import plan_node_settings, same_value
from lokifi_storage.domain.redis_topology import (
    ClusterInfo,
    ClusterNode,
    parse_cluster_info,
    parse_cluster_nodes,
)
from lokifi_storage.reconcile.report import PartReport

__all__ = ["reconcile_redis"]


@dataclass
class _Findings:
    """Everything one pass found, in the order it was found."""

    auth_failed: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    rewrite_failed: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    used_memory: dict[str, int] = field(default_factory=dict)
    planned: list[Change] = field(default_factory=list)


def _discover(
    spec: RedisSpec, nodes: RedisNodes, found: _Findings
) -> tuple[list[ClusterNode], ClusterInfo] | None:
    """Topology and cluster state from the first seed that answers."""
    for seed in spec.nodes:
        node = nodes.node(seed.host, seed.port)
        try:
            return parse_cluster_nodes(node.cluster_nodes(), seed.host), parse_cluster_info(
                node.cluster_info()
            )
        except AuthenticationFailed as error:
            found.auth_failed.append(error.message)
        except ClientError as error:
            found.unreachable.append(error.message)
    return None


def _plan_on_node(
    node: RedisNode, to_set: tuple[tuple[str, str], ...], current: dict[str, str], found: _Findings
) -> None:
    for key, value in to_set:
        found.planned.append(
            Change(
                "redis",
                node.address,
                "update",
                f"CONFIG SET {key} {current.get(key, '')} -> {value} on {node.address}",
                (FieldChange(key, current.get(key), value),),
            )
        )


def _apply_on_node(
    node: RedisNode,
    desired: dict[str, str],
    rewrite_config: bool,
    found: _Findings,
    apply: bool = True,
) -> None:
    current = node.config_get(desired) if desired else {}
    plan = plan_node_settings(node.address, desired, current)
    for key in plan.unknown:
        found.refused.append(f"{node.address} does not know the setting {key!r}")
    written: list[str] = []
    if not apply:
        _plan_on_node(node, plan.to_set, current, found)
    for key, value in plan.to_set if apply else ():
        try:
            node.config_set(key, value)
        except (ConnectionFailed, AuthenticationFailed):
            raise
        except ClientError as error:
            found.refused.append(f"{node.address} refused {key}: {error.message}")
            continue
        written.append(key)
        found.actions.append(f"CONFIG SET {key} {value} on {node.address}")
    if written:
        after = node.config_get(written)
        for key in written:
            if not same_value(key, desired[key], after.get(key, "")):
                found.refused.append(
                    f"{node.address} stored {key} as {after.get(key)!r}, not {desired[key]!r}; "
                    "write the value as the node reports it"
                )
        if rewrite_config and node.info("server").get("config_file"):
            try:
                node.config_rewrite()
            except (ConnectionFailed, AuthenticationFailed):
                raise
            except ClientError as error:
                found.rewrite_failed.append(f"{node.address}: {error.message}")
    memory = node.info("memory").get("used_memory")
    if memory is not None and memory.isdigit():
        found.used_memory[node.address] = memory_for_status(int(memory))


def _status(topology: list[ClusterNode], info: ClusterInfo, found: _Findings) -> RedisStatus:
    return RedisStatus(
        clusterState=info.state,
        slotsAssigned=info.slots_assigned,
        slotsOk=info.slots_ok,
        slotsFail=info.slots_fail + info.slots_pfail,
        masters=sum(1 for n in topology if n.is_master),
        replicas=sum(1 for n in topology if n.is_replica),
        usedMemoryBytes=dict(sorted(found.used_memory.items())),
    )


def _condition(
    info: ClusterInfo | None, topology: list[ClusterNode], found: _Findings, node_count: int
) -> Condition:
    problems: list[tuple[str, str]] = []
    problems += [(Reason.INVALID_SPEC, m) for m in found.invalid]
    problems += [(Reason.AUTHENTICATION_FAILED, m) for m in found.auth_failed]
    if info is not None and info.state != "ok":
        problems.append(
            (
                Reason.CLUSTER_NOT_OK,
                f"cluster_state is {info.state}: {info.slots_ok} of 16384 slots ok, "
                f"{info.slots_pfail} suspected failing, {info.slots_fail} failed",
            )
        )
    problems += [(Reason.NODE_UNREACHABLE, m) for m in found.unreachable]
    problems += [(Reason.SETTING_REFUSED, m) for m in found.refused]
    if info is None and not problems:
        problems.append((Reason.NODE_UNREACHABLE, "no seed node answered"))

    rewrite_note = (
        "; CONFIG REWRITE failed (settings apply until restart): " + "; ".join(found.rewrite_failed)
        if found.rewrite_failed
        else ""
    )
    if problems:
        return Condition(
            type=conditions.REDIS_READY,
            status="False",
            reason=problems[0][0],
            message="; ".join(message for _, message in problems) + rewrite_note,
        )
    masters = sum(1 for n in topology if n.is_master)
    replicas = sum(1 for n in topology if n.is_replica)
    changed = f", {len(found.actions)} settings written" if found.actions else ""
    return Condition(
        type=conditions.REDIS_READY,
        status="True",
        reason=Reason.RECONCILED,
        message=f"cluster ok: {masters} masters, {replicas} replicas, settings current on "
        f"{node_count} nodes{changed}{rewrite_note}",
    )


def reconcile_redis(
    spec: RedisSpec,
    password: str | None,
    *,
    nodes: RedisNodes | None = None,
    rewrite_config: bool = True,
    apply: bool = True,
) -> PartReport:
    """One pass over the whole cluster. Pass `nodes` to keep (and inspect) the connections;
    `apply=False` sends no CONFIG SET and returns the ones it would send as `planned`."""
    own = nodes is None
    client = nodes if nodes is not None else RedisNodes(password)
    found = _Findings()
    desired: dict[str, str] = {}
    for key, value in spec.settings.items():
        problem = setting_problem(key, value)
        if problem is None:
            desired[key] = value
        else:
            found.invalid.append(f"setting not applied: {problem}")
    try:
        discovered = _discover(spec, client, found)
        topology, info = discovered if discovered is not None else ([], None)
        reached = 0
        for member in sorted(topology, key=lambda n: (n.host, n.port)):
            if not member.addressable:
                found.unreachable.append(f"Redis node {member.node_id[:8]} has no address")
                continue
            try:
                _apply_on_node(
                    client.node(member.host, member.port), desired, rewrite_config, found, apply
                )
                reached += 1
            except AuthenticationFailed as error:
                found.auth_failed.append(error.message)
            except ConnectionFailed as error:
                found.unreachable.append(error.message)
            except ClientError as error:
                found.refused.append(error.message)
    finally:
        if own:
            client.close()

    status = {} if info is None else {"redis": _status(topology, info, found).model_dump()}
    return PartReport(
        condition=_condition(info, topology, found, reached),
        status=status,
        actions=found.actions,
        secret_data=redis_entries(spec.nodes, spec.contextTTLSeconds),
        planned=found.planned,
    )
