"""The local stack's Redis is a real 3-master cluster that routes keys by slot.

Sharding-aware features rely on keys living on the node that owns their slot, so this checks
the owner directly instead of trusting the cluster client.
"""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stackfixtures import StackEnv


def _masters_by_slot_range(stack: StackEnv) -> list[tuple[int, int, str, int]]:
    """(first slot, last slot, host, port) of each master, from CLUSTER NODES."""
    host, port = stack.redis_nodes[0]
    node = redis.Redis(host=host, port=port, password=stack.redis_password, decode_responses=True)
    try:
        raw = node.execute_command("CLUSTER NODES")  # type: ignore[no-untyped-call]
    finally:
        node.close()
    masters = []
    for address, info in raw.items():
        if "master" not in info["flags"].split(","):
            continue
        m_host, _, m_port = address.partition("@")[0].rpartition(":")
        for slot_range in info["slots"]:
            first, last = int(slot_range[0]), int(slot_range[-1])
            masters.append((first, last, m_host, int(m_port)))
    return masters


def test_the_cluster_has_three_masters_covering_all_slots(stack: StackEnv) -> None:
    masters = _masters_by_slot_range(stack)
    assert len({(host, port) for _, _, host, port in masters}) == 3
    assert sum(last - first + 1 for first, last, _, _ in masters) == 16384


def test_a_key_set_through_the_cluster_client_lives_on_its_slot_owner(
    stack: StackEnv, redis_prefix: str
) -> None:
    key, value = f"{redis_prefix}slot-probe", "stored-through-cluster-client"
    cluster = stack.redis_cluster()
    try:
        cluster.set(key, value)
        slot = cluster.keyslot(key)
    finally:
        cluster.close()
    masters = _masters_by_slot_range(stack)
    owner = next((h, p) for first, last, h, p in masters if first <= slot <= last)
    others = {(h, p) for _, _, h, p in masters} - {owner}

    direct = redis.Redis(
        host=owner[0], port=owner[1], password=stack.redis_password, decode_responses=True
    )
    try:
        assert direct.execute_command("CLUSTER KEYSLOT", key) == slot  # type: ignore[no-untyped-call]
        assert direct.get(key) == value
    finally:
        direct.close()

    other_host, other_port = sorted(others)[0]
    other = redis.Redis(host=other_host, port=other_port, password=stack.redis_password)
    try:
        with pytest.raises(redis.exceptions.MovedError) as moved:
            other.get(key)
        assert (moved.value.slot_id, moved.value.host, moved.value.port) == (slot, *owner)
    finally:
        other.close()


def test_every_node_refuses_commands_without_the_password(stack: StackEnv) -> None:
    for host, port in stack.redis_nodes:
        # No retries: redis-py would otherwise retry the refused AUTH with backoff.
        anonymous = redis.Redis(host=host, port=port, retry=Retry(NoBackoff(), 0))
        try:
            with pytest.raises(redis.AuthenticationError):
                anonymous.ping()
        finally:
            anonymous.close()
