"""One part breaks (a Redis node stops): only RedisReady goes False, Ready says why, every other
part stays True; when the node is back the resource recovers on its own."""

from __future__ import annotations

from e2e_full import FullExample
from e2e_operator import OperatorFactory, conditions, events, wait_for

from lokifi_storage.api import conditions as types
from stackfaults import stopped_redis_node


def a_replica_port(full_example: FullExample) -> int:
    """A Redis node that is a replica, so stopping it does not start a failover."""
    cluster = full_example.stack.redis_cluster()
    try:
        for node in cluster.get_replicas():
            return int(node.port)
    finally:
        cluster.close()
    raise AssertionError("the stack's Redis Cluster has no replica")


def test_stopped_redis_node_fails_only_redis_and_recovers(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.run_ready(start_operator)
    port = a_replica_port(full_example)

    with stopped_redis_node(port):
        conds = wait_for(
            lambda: (
                (c := conditions(full_example.get()))[types.REDIS_READY]["status"] == "False" and c
            ),
            60,
            "RedisReady False",
        )
        redis = conds[types.REDIS_READY]
        assert redis["reason"] == "NodeUnreachable"
        assert str(port) in redis["message"]
        ready = conds[types.READY]
        assert (ready["status"], ready["reason"]) == ("False", "NodeUnreachable")
        assert "RedisReady" in ready["message"]
        others = {
            kind: c["status"]
            for kind, c in conds.items()
            if kind in types.PART_CONDITIONS and kind != types.REDIS_READY
        }
        assert others, conds
        assert set(others.values()) == {"True"}, others
        assert conds[types.RECONCILING]["status"] == "True"  # retrying, not stalled
        warnings = [e for e in events(stack, ns, "lokifi-prod") if e["type"] == "Warning"]
        assert any(e["reason"] == "NodeUnreachable" for e in warnings)

    full_example.wait_ready()
    recovered = conditions(full_example.get())
    assert recovered[types.REDIS_READY]["status"] == "True"
    normal = [e for e in events(stack, ns, "lokifi-prod") if e["type"] == "Normal"]
    assert any("RedisReady recovered" in e["message"] for e in normal)
