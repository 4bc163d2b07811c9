"""Redis Cluster settings against the local stack's real 6-node cluster.

The cluster is shared with other tests, so every test here restores the settings it touches on
every node afterwards (the `restored_settings` fixture), and a test that stops a node restarts
it and waits for cluster_state:ok before it ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import RedisNodeSpec, RedisSpec
from lokifi_storage.clients.redis import RedisNodes
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.reconcile.redis import reconcile_redis
from stackfaults import stopped_redis_node
from stackfixtures import StackEnv

# Harmless on a shared cache: sampling precision, slow-log length, and a defrag threshold that
# matters only when activedefrag is on. active-defrag-ignore-bytes is a memory setting, so it
# also proves `200mb` is compared with the bytes CONFIG GET returns.
KEYS = (
    "maxmemory-samples",
    "slowlog-max-len",
    "active-defrag-ignore-bytes",
    "activedefrag",
    "maxmemory-policy",
)
SETTINGS = {
    "maxmemory-samples": "7",
    "slowlog-max-len": "200",
    "active-defrag-ignore-bytes": "200mb",
}


def _node(stack: StackEnv, host: str, port: int) -> redis.Redis:
    return redis.Redis(host=host, port=port, password=stack.redis_password, decode_responses=True)


def _config(stack: StackEnv, key: str) -> dict[int, str]:
    """{port: value of key} on every node."""
    values = {}
    for host, port in stack.redis_nodes:
        conn = _node(stack, host, port)
        try:
            values[port] = str(conn.config_get(key)[key])
        finally:
            conn.close()
    return values


def _config_set_calls(stack: StackEnv) -> dict[int, int]:
    """The server's own count of CONFIG SET calls, per node."""
    calls = {}
    for host, port in stack.redis_nodes:
        conn = _node(stack, host, port)
        try:
            stats = conn.info("commandstats")
        finally:
            conn.close()
        calls[port] = int(stats.get("cmdstat_config|set", {}).get("calls", 0))
    return calls


def _spec(stack: StackEnv, settings: dict[str, str], seeds: int = 3) -> RedisSpec:
    return RedisSpec(
        nodes=[RedisNodeSpec(host=h, port=p) for h, p in stack.redis_nodes[:seeds]],
        settings=settings,
        contextTTLSeconds=1800,
    )


def _replica_port(stack: StackEnv) -> int:
    host, port = stack.redis_nodes[0]
    conn = _node(stack, host, port)
    try:
        text = conn.execute_command("CLUSTER", "NODES")
    finally:
        conn.close()
    for line in str(text).splitlines():
        fields = line.split()
        if "slave" in fields[2] and "fail" not in fields[2]:
            return int(fields[1].split("@")[0].rpartition(":")[2])
    raise AssertionError("the cluster has no healthy replica")


@pytest.fixture
def restored_settings(stack: StackEnv) -> Iterator[None]:
    """Put back, on every node, the values KEYS had before the test (also in its config file,
    which the reconciler's CONFIG REWRITE changed)."""
    before = {key: _config(stack, key) for key in KEYS}
    yield
    for host, port in stack.redis_nodes:
        conn = _node(stack, host, port)
        try:
            for key in KEYS:
                conn.config_set(key, before[key][port])
            conn.execute_command("CONFIG", "REWRITE")
        except redis.ConnectionError:
            pass  # a node a failed test left down: the stack restarts it with defaults
        finally:
            conn.close()


@pytest.mark.usefixtures("restored_settings")
def test_settings_land_on_all_six_nodes_and_a_second_pass_sends_no_config_set(
    stack: StackEnv,
) -> None:
    spec = _spec(stack, SETTINGS)
    with RedisNodes(stack.redis_password) as nodes:
        first = reconcile_redis(spec, stack.redis_password, nodes=nodes)
        first_writes = list(nodes.config_set_log)
    assert first.condition.status == "True", first.condition.message
    assert _config(stack, "maxmemory-samples") == dict.fromkeys(range(7000, 7006), "7")
    assert _config(stack, "slowlog-max-len") == dict.fromkeys(range(7000, 7006), "200")
    assert _config(stack, "active-defrag-ignore-bytes") == dict.fromkeys(
        range(7000, 7006), str(200 * 1024 * 1024)
    )
    assert {node for node, _ in first_writes} == {f"127.0.0.1:{p}" for p in range(7000, 7006)}

    calls_before = _config_set_calls(stack)
    with RedisNodes(stack.redis_password) as nodes:
        second = reconcile_redis(spec, stack.redis_password, nodes=nodes)
        assert nodes.config_set_log == []
    assert _config_set_calls(stack) == calls_before
    assert second.actions == []
    assert second.condition.status == "True"

    status = status_json(second.status)["redis"]
    assert status["clusterState"] == "ok"
    assert (status["slotsAssigned"], status["slotsOk"], status["slotsFail"]) == (16384, 16384, 0)
    assert (status["masters"], status["replicas"]) == (3, 3)
    assert len(status["usedMemoryBytes"]) == 6
    assert all(value > 0 for value in status["usedMemoryBytes"].values())
    assert second.secret_data == {
        "REDIS_CLUSTER_NODES": "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",
        "REDIS_CONTEXT_TTL_SECONDS": "1800",
    }


@pytest.mark.usefixtures("restored_settings")
def test_drift_on_one_node_is_repaired_there_and_nowhere_else(stack: StackEnv) -> None:
    spec = _spec(stack, SETTINGS)
    reconcile_redis(spec, stack.redis_password)
    drifted = _node(stack, "127.0.0.1", 7004)
    try:
        drifted.config_set("slowlog-max-len", "999")
    finally:
        drifted.close()
    calls_before = _config_set_calls(stack)

    with RedisNodes(stack.redis_password) as nodes:
        report = reconcile_redis(spec, stack.redis_password, nodes=nodes)
        assert nodes.config_set_log == [("127.0.0.1:7004", "slowlog-max-len")]

    calls_after = _config_set_calls(stack)
    assert {p: calls_after[p] - calls_before[p] for p in calls_after} == {
        p: (1 if p == 7004 else 0) for p in calls_after
    }
    assert _config(stack, "slowlog-max-len")[7004] == "200"
    assert report.actions == ["CONFIG SET slowlog-max-len 200 on 127.0.0.1:7004"]


@pytest.mark.usefixtures("restored_settings")
def test_a_stopped_node_is_reported_and_the_others_still_get_the_settings(
    stack: StackEnv,
) -> None:
    port = _replica_port(stack)
    # The stopped node is the first seed, so discovery has to move on to the next one.
    seeds = [RedisNodeSpec(host="127.0.0.1", port=port)] + [
        RedisNodeSpec(host=h, port=p) for h, p in stack.redis_nodes if p != port
    ]
    spec = RedisSpec(nodes=seeds, settings={"maxmemory-samples": "9"})
    with stopped_redis_node(port), RedisNodes(stack.redis_password) as nodes:
        report = reconcile_redis(spec, stack.redis_password, nodes=nodes)
        written = {node for node, _ in nodes.config_set_log}

    assert (report.condition.status, report.condition.reason) == ("False", Reason.NODE_UNREACHABLE)
    assert f"127.0.0.1:{port}" in report.condition.message
    assert written == {f"127.0.0.1:{p}" for p in range(7000, 7006) if p != port}
    values = _config(stack, "maxmemory-samples")
    assert all(values[p] == "9" for p in values if p != port)
    # Back up, the node is repaired by the next pass.
    with RedisNodes(stack.redis_password) as nodes:
        healed = reconcile_redis(spec, stack.redis_password, nodes=nodes)
        # It came back with the defaults of its config file: only it is written.
        assert {node for node, _ in nodes.config_set_log} == {f"127.0.0.1:{port}"}
    assert healed.condition.status == "True", healed.condition.message
    assert _config(stack, "maxmemory-samples")[port] == "9"


def test_a_wrong_password_is_authentication_failed_without_the_password(stack: StackEnv) -> None:
    wrong = "Not-The-Redis-Passw0rd"
    report = reconcile_redis(_spec(stack, {"slowlog-max-len": "201"}), wrong)

    assert (report.condition.status, report.condition.reason) == (
        "False",
        Reason.AUTHENTICATION_FAILED,
    )
    everything = json.dumps(
        [report.condition.model_dump(), status_json(report.status), report.actions]
    )
    assert wrong not in everything
    assert stack.redis_password not in everything
    assert _config(stack, "slowlog-max-len") != dict.fromkeys(range(7000, 7006), "201")


@pytest.mark.usefixtures("restored_settings")
def test_a_setting_a_node_refuses_is_reported_with_node_and_key_and_the_rest_still_lands(
    stack: StackEnv,
) -> None:
    # Debian's redis-server is built against the system jemalloc, so it refuses to turn active
    # defragmentation on: a real refusal by the server of a value admission allows.
    spec = _spec(stack, {"activedefrag": "yes", "maxmemory-samples": "6"})
    report = reconcile_redis(spec, stack.redis_password)

    assert (report.condition.status, report.condition.reason) == ("False", Reason.SETTING_REFUSED)
    for port in range(7000, 7006):
        assert f"127.0.0.1:{port} refused activedefrag" in report.condition.message
    assert _config(stack, "activedefrag") == dict.fromkeys(range(7000, 7006), "no")
    assert _config(stack, "maxmemory-samples") == dict.fromkeys(range(7000, 7006), "6")


@pytest.mark.usefixtures("restored_settings")
def test_a_value_outside_the_allow_list_rules_is_not_sent_but_valid_keys_still_land(
    stack: StackEnv,
) -> None:
    # Admission refuses this value; model_construct stands for a spec that skipped admission.
    spec = RedisSpec.model_construct(
        nodes=[RedisNodeSpec(host=h, port=p) for h, p in stack.redis_nodes[:1]],
        passwordSecretRef=None,
        settings={"maxmemory-policy": "bogus-policy", "maxmemory-samples": "6"},
        contextTTLSeconds=3600,
    )
    with RedisNodes(stack.redis_password) as nodes:
        report = reconcile_redis(spec, stack.redis_password, nodes=nodes)
        assert {key for _, key in nodes.config_set_log} <= {"maxmemory-samples"}

    assert (report.condition.status, report.condition.reason) == ("False", Reason.INVALID_SPEC)
    assert "maxmemory-policy" in report.condition.message
    assert _config(stack, "maxmemory-samples") == dict.fromkeys(range(7000, 7006), "6")


def test_a_forbidden_key_never_reaches_a_node(stack: StackEnv) -> None:
    spec = RedisSpec.model_construct(
        nodes=[RedisNodeSpec(host=h, port=p) for h, p in stack.redis_nodes[:1]],
        passwordSecretRef=None,
        settings={"dir": "/var/lib/somewhere-else"},
        contextTTLSeconds=3600,
    )
    dirs_before = _config(stack, "dir")
    with RedisNodes(stack.redis_password) as nodes:
        report = reconcile_redis(spec, stack.redis_password, nodes=nodes)
        assert nodes.config_set_log == []

    assert (report.condition.status, report.condition.reason) == ("False", Reason.INVALID_SPEC)
    assert "'dir' is not allowed" in report.condition.message
    assert _config(stack, "dir") == dirs_before
