"""RedisReady=False with ClusterNotOk, on a real redis-server whose cluster really is not ok.

The shared 6-node cluster must stay healthy for every other test, so this one starts its own
cluster-enabled redis-server on free loopback ports: with no hash slots assigned it reports
`cluster_state:fail`, exactly as a cluster that lost slot coverage does. Assigning all 16384
slots to it (CLUSTER ADDSLOTSRANGE) makes the state `ok`, and the next pass says so.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import RedisNodeSpec, RedisSpec
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.reconcile.redis import reconcile_redis

REDIS_SERVER = "/usr/bin/redis-server"


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, held open together so the kernel cannot hand one out twice."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def lone_cluster_node(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A cluster-enabled redis-server with no slots: (port, password).

    The cluster bus port is set explicitly: by default it is port + 10000, which is past 65535
    for half of the kernel's ephemeral range, and redis-server then refuses to start.
    """
    (port, bus_port), password = _free_ports(2), secrets.token_hex(16)
    conf = tmp_path / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                f"port {port}",
                f"cluster-port {bus_port}",
                "bind 127.0.0.1",
                f"dir {tmp_path}",
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "appendonly no",
                'save ""',
                f"requirepass {password}",
                "",
            ]
        )
    )
    conf.chmod(0o600)
    log = tmp_path / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([REDIS_SERVER, str(conf)], stdout=out, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.fail(f"redis-server exited {proc.returncode}: {log.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, password
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_a_cluster_without_slot_coverage_is_cluster_not_ok_until_it_is(
    lone_cluster_node: tuple[int, str],
) -> None:
    port, password = lone_cluster_node
    spec = RedisSpec(nodes=[RedisNodeSpec(host="127.0.0.1", port=port)], settings={})

    failed = reconcile_redis(spec, password)
    assert failed.condition.status == "False"
    assert failed.condition.reason == Reason.CLUSTER_NOT_OK
    assert "fail" in failed.condition.message
    assert password not in failed.condition.message

    node = redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True)
    try:
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while node.cluster("INFO")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "the node never reported cluster_state:ok"
            time.sleep(0.1)
    finally:
        node.close()

    recovered = reconcile_redis(spec, password)
    assert recovered.condition.status == "True", recovered.condition.message
    assert status_json(recovered.status)["redis"]["clusterState"] == "ok"
