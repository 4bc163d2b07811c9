"""Redis Cluster: 6 redis-server nodes on 127.0.0.1:7000-7005, 3 masters + 3 replicas.

Every node has requirepass and masterauth set to one generated password. The password reaches
redis-cli only through REDISCLI_AUTH, never its command line, and sits in 0600 config files.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from stack.state import StackError, State, port_open, spawn, stop_pid, wait_for

HOST = "127.0.0.1"
PORTS = tuple(range(7000, 7006))
REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"


def _password(state: State) -> str:
    return state.secret("redis_password")


def env_values(state: State) -> dict[str, str]:
    return {
        "LOKIFI_REDIS_NODES": ",".join(f"{HOST}:{port}" for port in PORTS),
        "LOKIFI_REDIS_PASSWORD": _password(state),
    }


def _node_dir(state: State, port: int) -> Path:
    path = state.sub(f"redis/{port}")
    os.chmod(path, 0o700)
    return path


def _write_config(state: State, port: int) -> Path:
    node = _node_dir(state, port)
    conf = node / "redis.conf"
    password = _password(state)
    text = "\n".join(
        [
            f"port {port}",
            f"bind {HOST}",
            f"dir {node}",
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            "cluster-node-timeout 5000",
            "appendonly no",
            'save ""',
            "daemonize no",
            f"logfile {node / 'redis.log'}",
            f"requirepass {password}",
            f"masterauth {password}",
            "",
        ]
    )
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return conf


def _client(state: State, port: int):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis(
        host=HOST, port=port, password=_password(state), socket_timeout=2, decode_responses=True
    )


def _ping(state: State, port: int) -> bool:
    import redis

    try:
        return bool(_client(state, port).ping())
    except redis.RedisError:
        return False


def _cluster_info(state: State, port: int) -> dict[str, str]:
    raw: str = _client(state, port).execute_command("CLUSTER INFO")
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line)


def _cluster_ok(state: State) -> bool:
    import redis

    try:
        return all(
            info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == "6"
            for info in (_cluster_info(state, port) for port in PORTS)
        )
    except redis.RedisError:
        return False


def _node_running(state: State, port: int) -> bool:
    return state.running_pid(f"redis-{port}") is not None and port_open(port)


def _create_cluster(state: State) -> None:
    infos = [_cluster_info(state, port) for port in PORTS]
    if any(info.get("cluster_known_nodes") != "1" for info in infos) or any(
        info.get("cluster_slots_assigned") != "0" for info in infos
    ):
        # A half-formed cluster from an interrupted run: start the topology from scratch.
        for port in PORTS:
            client = _client(state, port)
            client.execute_command("FLUSHALL")
            client.execute_command("CLUSTER RESET HARD")
    argv = [
        REDIS_CLI,
        "--cluster",
        "create",
        *(f"{HOST}:{p}" for p in PORTS),
        "--cluster-replicas",
        "1",
        "--cluster-yes",
    ]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDISCLI_AUTH": _password(state)}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(
            f"redis-cli --cluster create failed: {result.stdout[-1500:]}{result.stderr[-500:]}"
        )


def up(state: State) -> bool:
    """Start the six nodes and form the cluster; True when all of it was already running."""
    reused = True
    for port in PORTS:
        if _node_running(state, port):
            continue
        reused = False
        if port_open(port):
            raise StackError(f"port {port} is taken by a process this stack did not start")
        conf = _write_config(state, port)
        log = _node_dir(state, port) / "redis.log"
        pid = spawn(
            [REDIS_SERVER, str(conf)],
            _node_dir(state, port) / "stdout.log",
            cwd=_node_dir(state, port),
        )
        state.write_pid(f"redis-{port}", pid)
        wait_for(f"redis node {port}", lambda p=port: _ping(state, p), 30, log)  # type: ignore[misc]
    if _cluster_ok(state):
        return reused
    # Nodes restarted from their nodes.conf rejoin on their own; give them a moment.
    if all(_cluster_info(state, p).get("cluster_known_nodes") == "6" for p in PORTS):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _cluster_ok(state):
            time.sleep(0.2)
        if _cluster_ok(state):
            return False
    _create_cluster(state)
    wait_for(
        "redis cluster_state:ok on every node",
        lambda: _cluster_ok(state),
        60,
        _node_dir(state, PORTS[0]) / "redis.log",
    )
    return False


def down(state: State) -> list[str]:
    stopped = []
    for port in PORTS:
        pid = state.running_pid(f"redis-{port}")
        if pid is not None:
            stop_pid(pid)
            stopped.append(f"redis-{port}")
        state.forget_pid(f"redis-{port}")
    return stopped


def status(state: State) -> list[tuple[str, bool, str]]:
    up_nodes = [p for p in PORTS if _node_running(state, p)]
    ok = len(up_nodes) == len(PORTS) and _cluster_ok(state)
    detail = f"{len(up_nodes)}/6 nodes on {HOST}:{PORTS[0]}-{PORTS[-1]}"
    detail += ", cluster_state:ok" if ok else ""
    return [("redis-cluster", ok, detail)]
