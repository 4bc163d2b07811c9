"""Fixtures of the operator's end-to-end tests: the CRD, and the operator as a process.

The CRD installed is the committed crds/lokifistorage.yaml (what admins install); set
LOKIFI_E2E_CRD to a path to test another one (an older CRD, for instance). Each test runs its
own operator process, serving only the test's namespace, so tests never see each other's
resources and an operator's log belongs to one test.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from e2e_full import FullExample
from e2e_operator import APP_SCHEMA, OperatorFactory, OperatorProcess, kubectl

from stackfixtures import REPO, PgDatabase, StackEnv, empty_and_delete_bucket, unique_name

CRD_NAME = "lokifistorages.storage.lokifi.ai"


@pytest.fixture(scope="session")
def crd(kube_stack: StackEnv) -> str:
    """The LokifiStorage CRD, applied and Established."""
    path = Path(os.environ.get("LOKIFI_E2E_CRD") or REPO / "crds" / "lokifistorage.yaml")
    if not path.exists():
        pytest.fail(f"{path} does not exist: generate it with `lokifi-storage crd`")
    kubectl(kube_stack, "apply", "--server-side", "--force-conflicts", "-f", str(path))
    kubectl(kube_stack, "wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    return CRD_NAME


@pytest.fixture
def start_operator(kube_stack: StackEnv, crd: str, tmp_path: Path) -> Iterator[OperatorFactory]:
    """Start `lokifi-storage run` processes; all are stopped (SIGTERM) after the test.

    Call with the namespace to serve; `standalone=False` takes part in leader election,
    `kubeconfig=` points it elsewhere (a counting proxy), `extra=` adds flags.
    """
    started: list[OperatorProcess] = []

    def start(
        namespace: str,
        *,
        standalone: bool = True,
        resync_seconds: float = 5,
        kubeconfig: str | Path | None = None,
        extra: Sequence[str] = (),
    ) -> OperatorProcess:
        assert kube_stack.kubeconfig is not None
        args = ["--namespace", namespace, "--resync-seconds", str(resync_seconds), *extra]
        args.append("--standalone" if standalone else "--no-standalone")
        if not standalone:
            args += ["--lease-namespace", namespace]
        process = OperatorProcess(
            kubeconfig or kube_stack.kubeconfig,
            args,
            tmp_path / f"operator-{len(started)}.log",
            env={"LOKIFI_JOB_IMAGE": "registry.example/lokifi-storage:e2e"},
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
    for process in started:
        print(f"--- {process.log_path.name} ---\n{process.log()[-6000:]}")


REDIS_KEYS = ("maxmemory", "maxmemory-policy")


@pytest.fixture
def full_example(
    kube_stack: StackEnv,
    k8s_namespace: str,
    pg_database: PgDatabase,
    request: pytest.FixtureRequest,
) -> Iterator[FullExample]:
    """The full example's world: tables, buckets, Secrets; Redis settings restored afterwards."""
    import psycopg

    with psycopg.connect(pg_database.primary_url, autocommit=True) as conn:
        conn.execute(APP_SCHEMA.read_bytes())
    s3 = kube_stack.s3_client()
    buckets = {
        role: unique_name(f"{role}-{request.node.name}", 63, sep="-")
        for role in ("media", "backups", "archive")
    }
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    cluster = kube_stack.redis_cluster()
    original = {key: cluster.config_get(key, target_nodes=cluster.ALL_NODES) for key in REDIS_KEYS}
    try:
        yield FullExample(kube_stack, k8s_namespace, pg_database, buckets)
    finally:
        for key, per_node in original.items():
            for node_name, values in per_node.items():
                host, _, port = node_name.rpartition(":")
                node = cluster.get_node(host=host, port=int(port))
                if node is not None and key in values:
                    with contextlib.suppress(Exception):
                        cluster.config_set(key, values[key], target_nodes=node)
                        cluster.config_rewrite(target_nodes=node)
        cluster.close()
        for bucket in buckets.values():
            empty_and_delete_bucket(kube_stack, bucket)
