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

With a `claimant` (the resource), each setting has one owner (domain/claims.py): the claims
hash `lokifi-storage:claims` of the cluster records, per setting, the resource that manages it
and its value. A setting another resource manages with another value is a Conflict naming the
owner, and then nothing at all is written to the cluster by this resource; an equal value is
shared. The cluster is named in messages by its masters' node ids, which is how it is known
whichever seed nodes a resource lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lokifi_storage.api import conditions
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.redis_settings import setting_problem
from lokifi_storage.api.spec import LokifiStorageSpec, RedisSpec
from lokifi_storage.api.status import Condition, LokifiStorageStatus, RedisStatus, failed, ready
from lokifi_storage.clients.errors import AuthenticationFailed, ClientError, ConnectionFailed
from lokifi_storage.clients.redis import CLAIMS_KEY, RedisNode, RedisNodes
from lokifi_storage.domain.change_plan import Change, FieldChange
from lokifi_storage.domain.claims import Claim, Claimant, Verdict, judge
from lokifi_storage.domain.connection_secret import redis_entries
from lokifi_storage.domain.quantize import memory_for_status
from lokifi_storage.domain.redis_config import normalize, plan_node_settings, same_value
from lokifi_storage.domain.redis_topology import (
    ClusterInfo,
    ClusterNode,
    parse_cluster_info,
    parse_cluster_nodes,
)
from lokifi_storage.reconcile.fence import LeadershipLost
from lokifi_storage.reconcile.parts import Part, PartContext, claimant_of
from lokifi_storage.reconcile.report import PartReport

__all__ = ["PART", "RedisPart", "reconcile_redis", "release_redis_claims"]


@dataclass
class _Findings:
    """Everything one pass found, in the order it was found."""

    auth_failed: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
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


def _cluster_name(topology: list[ClusterNode]) -> str:
    masters = sorted(n.node_id[:8] for n in topology if n.is_master)
    return f"Redis cluster (masters {', '.join(masters)})" if masters else "the Redis cluster"


def _claims_node(topology: list[ClusterNode], nodes: RedisNodes) -> RedisNode | None:
    """Where to send the claims commands first (MOVED leads to the key's master)."""
    masters = sorted(
        (n for n in topology if n.is_master and n.addressable and not n.failing),
        key=lambda n: (n.host, n.port),
    )
    return nodes.node(masters[0].host, masters[0].port) if masters else None


def _settle_claims(
    nodes: RedisNodes,
    start: RedisNode,
    claimant: Claimant,
    desired: dict[str, str],
    cluster: str,
    found: _Findings,
    apply: bool = True,
) -> dict[str, str]:
    """Check and record the claims of `desired`; the settings this resource may write (none
    at all when one of them is another resource's with another value). Without `apply`, only
    the check."""
    raw = nodes.claims(start)
    recorded = {key: Claim.decode(text) for key, text in raw.items()}
    writes: list[tuple[str, bool]] = []
    for key, value in desired.items():
        mine = normalize(key, value)
        claim = recorded.get(key)
        verdict = judge(claimant, claim, claim is not None and claim.value == mine)
        if verdict is Verdict.CONFLICT and claim is not None:
            found.conflicts.append(
                f"setting {key} of {cluster} is managed by {claim.owner} with value "
                f"{claim.value!r}; this resource wants {mine!r} and changes nothing on the "
                f"cluster (make the values equal, or remove the setting from one of the two; "
                f"claim: HGET {CLAIMS_KEY} {key})"
            )
        elif verdict is Verdict.FREE or (verdict is Verdict.OURS and claim and claim.value != mine):
            writes.append((key, verdict is Verdict.OURS))
    if found.conflicts:
        return {}
    if not apply:
        return desired
    for key, replace in writes:
        encoded = claimant.claim(normalize(key, desired[key])).encode()
        if not nodes.claim(start, key, encoded, replace=replace):
            found.conflicts.append(
                f"setting {key} of {cluster} was claimed by another resource just now; "
                "its owner is named on the next pass"
            )
            return {}
        found.actions.append(f"claimed setting {key} of {cluster}")
    retired = [
        key
        for key, claim in recorded.items()
        if claim is not None and claim.uid == claimant.uid and key not in desired
    ]
    for key in retired:
        if nodes.release(start, key, raw[key]):
            found.actions.append(f"released setting {key} of {cluster}")
    return desired


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
        except (ConnectionFailed, AuthenticationFailed, LeadershipLost):
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
            except (ConnectionFailed, AuthenticationFailed, LeadershipLost):
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
    problems += [(Reason.CONFLICT, m) for m in found.conflicts]
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
        return failed(
            conditions.REDIS_READY,
            problems[0][0],
            "; ".join(message for _, message in problems) + rewrite_note,
        )
    masters = sum(1 for n in topology if n.is_master)
    replicas = sum(1 for n in topology if n.is_replica)
    changed = f", {len(found.actions)} settings written" if found.actions else ""
    return ready(
        conditions.REDIS_READY,
        f"cluster ok: {masters} masters, {replicas} replicas, settings current on "
        f"{node_count} nodes{changed}{rewrite_note}",
    )


def reconcile_redis(
    spec: RedisSpec,
    password: str | None,
    *,
    nodes: RedisNodes | None = None,
    rewrite_config: bool = True,
    apply: bool = True,
    claimant: Claimant | None = None,
    before_write: Callable[[str], None] | None = None,
) -> PartReport:
    """One pass over the whole cluster. Pass `nodes` to keep (and inspect) the connections;
    `apply=False` sends no CONFIG SET and returns the ones it would send as `planned`;
    `claimant` to take part in the claims of settings (the operator always does; with
    `apply=False` conflicts are reported but no claim is recorded); `before_write` (the
    leader's fence) is asked before each write of the connections this opens, and raising
    LeadershipLost there ends the pass with nothing more sent."""
    own = nodes is None
    client = nodes if nodes is not None else RedisNodes(password, before_write=before_write)
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
        start = _claims_node(topology, client) if claimant is not None else None
        if claimant is not None and start is not None:
            try:
                desired = _settle_claims(
                    client, start, claimant, desired, _cluster_name(topology), found, apply
                )
            except LeadershipLost:
                raise
            except ClientError as error:
                found.unreachable.append(f"claims of the settings not readable: {error.message}")
                desired = {}
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
            except LeadershipLost:
                raise
            except ClientError as error:
                found.refused.append(error.message)
    finally:
        if own:
            client.close()

    status = (
        LokifiStorageStatus()
        if info is None
        else LokifiStorageStatus(redis=_status(topology, info, found))
    )
    return PartReport(
        condition=_condition(info, topology, found, reached),
        status=status,
        actions=found.actions,
        secret_data=redis_entries(spec.nodes, spec.contextTTLSeconds),
        planned=found.planned,
    )


def release_redis_claims(
    spec: RedisSpec,
    password: str | None,
    claimant: Claimant,
    before_write: Callable[[str], None] | None = None,
) -> list[str]:
    """Release every setting claim of `claimant` on the cluster (the resource is deleted),
    each asking `before_write` first."""
    found = _Findings()
    with RedisNodes(password, before_write=before_write) as client:
        discovered = _discover(spec, client, found)
        if discovered is None:
            raise ClientError("; ".join(found.auth_failed + found.unreachable) or "no seed node")
        topology, _ = discovered
        start = _claims_node(topology, client)
        if start is None:
            return []
        raw = client.claims(start)
        released = []
        for key, text in raw.items():
            claim = Claim.decode(text)
            if claim is not None and claim.uid == claimant.uid and client.release(start, key, text):
                released.append(f"released setting {key} of {_cluster_name(topology)}")
        return released


class RedisPart:
    """spec.redis: RedisReady, status.redis, the REDIS_* keys, the claims of the settings."""

    name = "redis"
    conditions = (conditions.REDIS_READY,)
    status_keys = ("redis",)

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return spec.redis is not None

    def run(self, ctx: PartContext) -> list[PartReport]:
        redis = ctx.spec.redis
        assert redis is not None
        password = ctx.secrets.optional(redis.passwordSecretRef)
        report = reconcile_redis(
            redis,
            password,
            apply=ctx.apply,
            claimant=claimant_of(ctx),
            before_write=ctx.fence.check,
        )
        return [report]

    def cleanup(self, ctx: PartContext) -> list[str]:
        return []  # settings are left as they are: another client may rely on them

    def release(self, ctx: PartContext) -> list[str]:
        redis = ctx.spec.redis
        assert redis is not None
        password = ctx.secrets.optional(redis.passwordSecretRef)
        return release_redis_claims(redis, password, claimant_of(ctx), ctx.fence.check)


PART: Part = RedisPart()
