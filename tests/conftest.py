"""Fixtures that hand every test the real servers of the local stack, isolated per test.

Session: `stack` (PostgreSQL, Redis Cluster, S3; started with `python -m stack up` when they do
not answer) and `kube_stack` (the same plus a reachable Kubernetes API server).
Per test: `pg_database`, `redis_prefix`, `s3_bucket`, `k8s_namespace` - each unique to the test
and removed afterwards, so tests never see each other's data.

Tests under tests/integration are marked `integration`, tests under tests/e2e `e2e`, tests under
tests/node (Pods in the stack's node) `node`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfixtures import (
    PgDatabase,
    StackEnv,
    create_database,
    delete_prefixed_keys,
    drop_database,
    empty_and_delete_bucket,
    ensure_stack,
    kubectl,
    release_redis_claims,
    release_stale_redis_claims,
    unique_name,
)

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
        if parts[0] == "integration":
            item.add_marker(pytest.mark.integration)
        elif parts[0] == "e2e":
            item.add_marker(pytest.mark.e2e)
        elif parts[0] == "node":
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def stack() -> StackEnv:
    """PostgreSQL primary+replica, Redis Cluster and S3 of stack.env, started if not answering.

    `kubeconfig`/`kubectl` may be None here; ask for `kube_stack` when a test needs Kubernetes.
    """
    return ensure_stack(with_kube=False)


@pytest.fixture(scope="session")
def kube_stack(stack: StackEnv) -> StackEnv:
    """`stack` plus a Kubernetes API server answering /readyz (started if needed, or the
    cluster that KUBECONFIG already pointed at when the stack came up). Redis setting claims
    of namespaces that no longer exist (a killed earlier run) are released first."""
    env = ensure_stack(with_kube=True)
    release_stale_redis_claims(env)
    return env


@pytest.fixture
def pg_database(stack: StackEnv, request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    """A fresh database on the primary, already replayed on the replica.

    The value is a `str` - the database's URL on the primary, usable as psycopg.connect(...)'s
    argument - with attributes `.name`, `.primary_url` and `.replica_url` (the same database on
    the streaming replica). Dropped WITH (FORCE) after the test.
    """
    name = unique_name(request.node.name, 63)
    db = create_database(stack, name)
    yield db
    drop_database(stack, name)


@pytest.fixture
def redis_prefix(stack: StackEnv, request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix unique to this test (e.g. `t:test_x:1a2b3c4d:`); every key starting with it
    is deleted from every master afterwards. Keys under it spread over slots like real keys."""
    prefix = unique_name(request.node.name, 60, sep=":") + ":"
    yield prefix
    delete_prefixed_keys(stack, prefix)


@pytest.fixture
def s3_bucket(stack: StackEnv, request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a fresh, empty, created bucket; emptied (all versions) and deleted after."""
    name = unique_name(request.node.name, 63, sep="-")
    stack.s3_client().create_bucket(Bucket=name)
    yield name
    empty_and_delete_bucket(stack, name)


@pytest.fixture
def k8s_namespace(kube_stack: StackEnv, request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a fresh namespace; deleted after (the namespace controller removes its
    contents in the background, so the next test does not wait for that), and the Redis
    setting claims of its resources released."""
    name = unique_name(request.node.name, 63, sep="-")
    kubectl(kube_stack, "create", "namespace", name)
    yield name
    kubectl(kube_stack, "delete", "namespace", name, "--wait=false", "--ignore-not-found")
    # The Redis Cluster is shared: a resource of this namespace whose operator stopped before
    # seeing it deleted must not keep owning a setting other tests declare differently.
    release_redis_claims(kube_stack, [name])
