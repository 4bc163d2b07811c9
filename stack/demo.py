"""`python -m stack demo`: the operator reconciling the sample resource against the local stack.

What an admin would do by hand, in order: the application's database and tables (the operator
manages tables, it never creates them), the CRD, a namespace, the Secrets the resource names
(built from the stack's own credentials and sent to kubectl on stdin, never as arguments), the
resource itself; then the operator in the background (`lokifi-storage run`), a wait for
condition Ready, and what `kubectl get` and `kubectl describe` show. Running it again reuses
everything that is already there; `demo --stop` stops the operator it started.

`demo --cluster` (`make demo-cluster`) does what a cluster admin does instead: the operator
image built by `python -m stack image` and imported into the stack's node, `helm upgrade
--install` of the chart in namespace lokifi-cluster (Pod Security Standard "restricted"
enforced), and the same resource with the addresses a Pod reaches the stack at (the node's
gateway). `demo --cluster --stop` uninstalls the release.
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
CLUSTER_NAMESPACE = "lokifi-cluster"
RESOURCE = "lokifi-demo"
DATABASE = "lokifi_demo"
OPERATOR = "demo-operator"
RELEASE = "lokifi-storage-operator"


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


def _secret(name: str, data: dict[str, str], namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    }


def _apply_objects(
    env: dict[str, str], primary_url: str, namespace: str = NAMESPACE, gateway: str | None = None
) -> None:
    """CRD, namespace, Secrets and the example; with `gateway`, every 127.0.0.1 becomes the
    address Pods reach the stack at, and the namespace enforces the restricted standard."""

    def reach(text: str) -> str:
        if not gateway:
            return text
        text = text.replace("127.0.0.1", gateway)
        if "allowPlainHttp" in (REPO / "crds" / "lokifistorage.yaml").read_text():
            # The gateway is not loopback: plain http to it has to be asked for.
            text = text.replace(
                "    endpoint: http://", "    allowPlainHttp: true\n    endpoint: http://"
            )
        return text

    _kubectl(env, "apply", "-f", str(REPO / "crds"))
    _kubectl(env, "wait", "--for=condition=Established", "crd/lokifistorages.storage.lokifi.ai")
    ns: dict[str, object] = {"name": namespace}
    if gateway:
        ns["labels"] = {"pod-security.kubernetes.io/enforce": "restricted"}
    ns_object = {"apiVersion": "v1", "kind": "Namespace", "metadata": ns}
    secrets = [
        _secret("lokifi-db", {"url": reach(primary_url)}, namespace),
        _secret(
            "lokifi-db-replica-1",
            {"url": reach(_with_dbname(env["LOKIFI_PG_REPLICA_URL"], DATABASE))},
            namespace,
        ),
        _secret("lokifi-redis", {"password": env["LOKIFI_REDIS_PASSWORD"]}, namespace),
        _secret(
            "lokifi-s3",
            {
                "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
            },
            namespace,
        ),
    ]
    items = {"apiVersion": "v1", "kind": "List", "items": [ns_object, *secrets]}
    _kubectl(env, "apply", "-f", "-", stdin=json.dumps(items))
    example = EXAMPLE.read_text().replace(f"namespace: {NAMESPACE}\n", f"namespace: {namespace}\n")
    _kubectl(env, "apply", "-f", "-", stdin=reach(example))


def _helm(env: dict[str, str], *args: str) -> None:
    argv = ["bash", str(REPO / "scripts" / "helm.sh"), *args, "--kubeconfig", env["KUBECONFIG"]]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"helm {' '.join(args)} failed: {done.stderr.strip()}")


def _install_chart(env: dict[str, str]) -> None:
    """The image built and imported into the node, then the chart installed with it."""
    from stack import image, node

    state = State.default()
    started = time.monotonic()
    archive = image.build()
    node.import_image(state, archive, image.image_name())
    print(f"image {image.image_name()} built and imported ({time.monotonic() - started:.0f}s)")
    repository, _, tag = image.image_name().rpartition(":")
    _helm(
        env, "upgrade", "--install", RELEASE, str(REPO / "charts" / "lokifi-storage-operator"),
        "--namespace", CLUSTER_NAMESPACE, "--wait", "--timeout", "180s",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", "--set", f"watchNamespaces={{{CLUSTER_NAMESPACE}}}",
    )  # fmt: skip


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


def demo(stop: bool = False, timeout: float = 300, cluster: bool = False) -> int:
    state = State.default()
    env = read_env_file(state.env_file)
    if cluster:
        return _demo_cluster(env, stop, timeout)
    if stop:
        pid = state.running_pid(OPERATOR)
        if pid is not None:
            stop_pid(pid)
            print(f"stopped operator (pid {pid})")
        state.forget_pid(OPERATOR)
        return 0
    if "KUBECONFIG" not in env:
        print("Kubernetes is not up: run `python -m stack up` first", file=sys.stderr)
        return 1
    started = time.monotonic()
    primary_url = _database(env)
    _apply_objects(env, primary_url)
    _start_operator(state, env)
    return _wait_and_show(env, NAMESPACE, primary_url, started, timeout)


def _demo_cluster(env: dict[str, str], stop: bool, timeout: float) -> int:
    if stop:
        _helm(env, "uninstall", RELEASE, "--namespace", CLUSTER_NAMESPACE, "--ignore-not-found")
        print(f"uninstalled {RELEASE} from {CLUSTER_NAMESPACE}")
        return 0
    if "LOKIFI_NODE_GATEWAY" not in env:
        print("the node is not up: run `python -m stack up --node` first", file=sys.stderr)
        return 1
    started = time.monotonic()
    primary_url = _database(env)
    _apply_objects(env, primary_url, CLUSTER_NAMESPACE, env["LOKIFI_NODE_GATEWAY"])
    _install_chart(env)
    code = _wait_and_show(env, CLUSTER_NAMESPACE, primary_url, started, timeout)
    print(f"$ kubectl get pods -n {CLUSTER_NAMESPACE} -o wide")
    print(_kubectl(env, "-n", CLUSTER_NAMESPACE, "get", "pods", "-o", "wide"))
    print("`.venv/bin/python -m stack demo --cluster --stop` uninstalls the release.")
    return code


def _wait_and_show(
    env: dict[str, str], namespace: str, primary_url: str, started: float, timeout: float
) -> int:
    print(f"waiting up to {timeout:.0f}s for lks/{RESOURCE} to be Ready ...", flush=True)
    waited = subprocess.run(
        [
            env["KUBECTL"],
            "--kubeconfig",
            env["KUBECONFIG"],
            "-n",
            namespace,
            "wait",
            "--for=condition=Ready",
            f"lks/{RESOURCE}",
            f"--timeout={int(timeout)}s",
        ],
        check=False,
    )
    if waited.returncode == 0:
        print(f"ai_messages now holds {_chat(primary_url)} rows, routed into the new partitions")
    print(f"\n$ kubectl get lks -n {namespace}   ({time.monotonic() - started:.1f}s after start)")
    print(_kubectl(env, "-n", namespace, "get", "lks"))
    print(f"$ kubectl get secrets,cronjobs -n {namespace}")
    print(_kubectl(env, "-n", namespace, "get", "secrets,cronjobs"))
    print(f"$ kubectl describe lks {RESOURCE} -n {namespace}")
    print(_kubectl(env, "-n", namespace, "describe", "lks", RESOURCE))
    if namespace == NAMESPACE:
        print(
            "The operator keeps running in the background; "
            "`.venv/bin/python -m stack demo --stop` stops it."
        )
    return waited.returncode
