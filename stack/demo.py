"""`python -m stack demo`: the operator reconciling the sample resource against the local stack.

What an admin would do by hand, in order: the application's database and tables (the operator
manages tables, it never creates them), the CRD, a namespace, the Secrets the resource names
(built from the stack's own credentials and sent to kubectl on stdin, never as arguments), the
resource itself; then the operator in the background (`lokifi-storage run`), a wait for
condition Ready, and what `kubectl get` and `kubectl describe` show. Running it again reuses
everything that is already there; `demo --stop` stops the operator it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from stack.state import State, read_env_file, spawn, stop_pid

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "local" / "lokifistorage.yaml"
SCHEMA = REPO / "examples" / "local" / "schema.sql"
NAMESPACE = "lokifi"
RESOURCE = "lokifi-demo"
DATABASE = "lokifi_demo"
OPERATOR = "demo-operator"


def _kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    argv = [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"], *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _with_dbname(url: str, dbname: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + dbname


def _database(env: dict[str, str]) -> str:
    """The demo database with the application's tables and a little of last week's chat."""
    import psycopg

    with psycopg.connect(env["LOKIFI_PG_PRIMARY_URL"], autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    url = _with_dbname(env["LOKIFI_PG_PRIMARY_URL"], DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('ai_messages')").fetchone() == (None,):
            conn.execute(SCHEMA.read_text())  # type: ignore[arg-type]
    return url


def _chat(url: str) -> int:
    """A little of the last days' chat, written once (after the operator made the partitions)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM ai_messages LIMIT 1").fetchone() is None:
            conn.execute(
                "INSERT INTO ai_messages (user_id, thread_id, role, content, created_at) "
                "SELECT g % 50, g % 200, 'user', 'hello number ' || g, "
                "now() - (g || ' minutes')::interval FROM generate_series(1, 5000) g"
            )
        row = conn.execute("SELECT count(*) FROM ai_messages").fetchone()
    return int(row[0]) if row else 0


def _secret(name: str, data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": data,
    }


def _apply_objects(env: dict[str, str], primary_url: str) -> None:
    _kubectl(env, "apply", "-f", str(REPO / "crds"))
    _kubectl(env, "wait", "--for=condition=Established", "crd/lokifistorages.storage.lokifi.ai")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    secrets = [
        _secret("lokifi-db", {"url": primary_url}),
        _secret(
            "lokifi-db-replica-1",
            {"url": _with_dbname(env["LOKIFI_PG_REPLICA_URL"], DATABASE)},
        ),
        _secret("lokifi-redis", {"password": env["LOKIFI_REDIS_PASSWORD"]}),
        _secret(
            "lokifi-s3",
            {
                "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
            },
        ),
    ]
    items = {"apiVersion": "v1", "kind": "List", "items": [namespace, *secrets]}
    _kubectl(env, "apply", "-f", "-", stdin=json.dumps(items))
    _kubectl(env, "apply", "-f", str(EXAMPLE))


def _start_operator(state: State, env: dict[str, str]) -> int:
    pid = state.running_pid(OPERATOR)
    if pid is not None:
        print(f"operator already running (pid {pid})")
        return pid
    log = state.sub("logs") / "operator.log"
    argv = [
        str(REPO / ".venv" / "bin" / "lokifi-storage"),
        "run",
        "--namespace",
        NAMESPACE,
        "--standalone",
        "--health-port",
        "58080",
        "--resync-seconds",
        "60",
    ]
    pid = spawn(argv, log, env={**os.environ, "KUBECONFIG": env["KUBECONFIG"]}, cwd=REPO)
    state.write_pid(OPERATOR, pid)
    print(f"operator started (pid {pid}), log: {log}")
    return pid


def demo(stop: bool = False, timeout: float = 300) -> int:
    state = State.default()
    if stop:
        pid = state.running_pid(OPERATOR)
        if pid is not None:
            stop_pid(pid)
            print(f"stopped operator (pid {pid})")
        state.forget_pid(OPERATOR)
        return 0
    env = read_env_file(state.env_file)
    if "KUBECONFIG" not in env:
        print("Kubernetes is not up: run `python -m stack up` first", file=sys.stderr)
        return 1
    started = time.monotonic()
    primary_url = _database(env)
    _apply_objects(env, primary_url)
    _start_operator(state, env)
    print(f"waiting up to {timeout:.0f}s for lks/{RESOURCE} to be Ready ...", flush=True)
    waited = subprocess.run(
        [
            env["KUBECTL"],
            "--kubeconfig",
            env["KUBECONFIG"],
            "-n",
            NAMESPACE,
            "wait",
            "--for=condition=Ready",
            f"lks/{RESOURCE}",
            f"--timeout={int(timeout)}s",
        ],
        check=False,
    )
    if waited.returncode == 0:
        print(f"ai_messages now holds {_chat(primary_url)} rows, routed into the new partitions")
    print(f"\n$ kubectl get lks -n {NAMESPACE}   ({time.monotonic() - started:.1f}s after start)")
    print(_kubectl(env, "-n", NAMESPACE, "get", "lks"))
    print(f"$ kubectl get secrets,cronjobs -n {NAMESPACE}")
    print(_kubectl(env, "-n", NAMESPACE, "get", "secrets,cronjobs"))
    print(f"$ kubectl describe lks {RESOURCE} -n {NAMESPACE}")
    print(_kubectl(env, "-n", NAMESPACE, "describe", "lks", RESOURCE))
    print(
        "The operator keeps running in the background; "
        "`.venv/bin/python -m stack demo --stop` stops it."
    )
    return waited.returncode
