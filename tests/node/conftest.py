"""Fixtures of the in-cluster tests: the stack's node, the operator image, a helm release.

These tests run what a user runs: `helm install` of the chart with the image built by
`python -m stack image`, the operator as a Pod under the restricted Pod Security Standard, its
CronJobs as Jobs. The node starts with `python -m stack up --only node` when it is not up.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "e2e"))

from e2e_operator import APP_SCHEMA, kubectl  # noqa: E402
from nodekit import (  # noqa: E402
    RELEASE,
    Release,
    World,
    build_and_import_image,
    create_pod_secrets,
)

from stackfixtures import (  # noqa: E402
    StackEnv,
    create_database,
    drop_database,
    empty_and_delete_bucket,
    ensure_stack,
    read_env_file,
    release_redis_claims,
    run_stack_up,
    state_dir,
    unique_name,
)

CRD = TESTS.parent / "crds" / "lokifistorage.yaml"


@pytest.fixture(scope="session")
def node_stack() -> StackEnv:
    """The stack with its node Ready (started if it is not)."""
    stack = ensure_stack(with_kube=True)
    if "LOKIFI_NODE_GATEWAY" not in stack.env:
        run_stack_up(["node"])
        stack = StackEnv.from_env(read_env_file(state_dir() / "stack.env"))
    ready = kubectl(
        stack,
        "get",
        "nodes",
        "-o",
        'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}',
    )
    if "True" not in ready.split():
        run_stack_up(["node"])
    return stack


@pytest.fixture(scope="session")
def operator_image(node_stack: StackEnv) -> str:
    """The operator image for this checkout, built (or taken from the cache) and imported."""
    name, seconds = build_and_import_image()
    print(f"operator image {name} ready in {seconds:.0f}s")
    return name


@pytest.fixture(scope="module")
def world(
    node_stack: StackEnv,
    operator_image: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    import psycopg

    stack = node_stack
    base = unique_name(request.module.__name__.rsplit(".", 1)[-1], 40, sep="-")
    namespace = base
    kubectl(stack, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kubectl(stack, "create", "namespace", namespace)
    kubectl(
        stack,
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    database = create_database(stack, unique_name(base, 63))
    with psycopg.connect(database.primary_url, autocommit=True) as conn:
        conn.execute(APP_SCHEMA.read_bytes())
    buckets = {
        role: unique_name(f"{role}-{base}", 63, sep="-") for role in ("media", "backups", "archive")
    }
    s3 = stack.s3_client()
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    create_pod_secrets(stack, namespace, database)
    release = Release(
        stack, namespace, operator_image, tmp_path_factory.mktemp("helm") / "values.json"
    )
    world = World(stack, namespace, database, buckets, release)
    cluster = stack.redis_cluster()
    original = cluster.config_get("maxmemory", target_nodes=cluster.ALL_NODES)
    policy = cluster.config_get("maxmemory-policy", target_nodes=cluster.ALL_NODES)
    try:
        world.installed_at = time.monotonic()
        # The CRD is cluster-wide and already applied (by kubectl, as the e2e tests do); Helm
        # would install it only where it is missing anyway.
        release.helm("install", "--skip-crds", "--wait", "--timeout", "180s")
        yield world
    finally:
        print(release.kubectl("logs", f"deployment/{RELEASE}", "--tail=60", check=False))
        release.uninstall()
        kubectl(stack, "delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
        # The operator Pod is gone before it could see its resource deleted: its Redis setting
        # claims would make every later resource with other settings Conflict.
        release_redis_claims(stack, [namespace])
        for saved in (original, policy):
            for node_name, values in saved.items():
                host, _, port = node_name.rpartition(":")
                node = cluster.get_node(host=host, port=int(port))
                for key, value in values.items():
                    if node is not None:
                        with contextlib.suppress(Exception):
                            cluster.config_set(key, value, target_nodes=node)
                            cluster.config_rewrite(target_nodes=node)
        cluster.close()
        drop_database(stack, database.name)
        for bucket in buckets.values():
            empty_and_delete_bucket(stack, bucket)
