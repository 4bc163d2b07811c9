"""Two LokifiStorage resources in two namespaces, each served by its own operator process, declare
the same Redis setting, the same lifecycle rule id of one bucket and the same table, with
different values. The first owns all three; the second is Stalled/Conflict naming the owner and
changes nothing, so resyncs do not fight: no CONFIG SET and no lifecycle PUT after the owner's.
Equal values share. Deleting the owner releases its claims, and the other takes over.

S3 writes are counted where they arrive, like the no-op test counts the API server's: the
operators reach S3 through a recording proxy (every PutBucketLifecycleConfiguration is a PUT
with `?lifecycle`). Redis does not show CONFIG SET to MONITOR (an admin command) and the shared
cluster's command statistics count other tests' writes too, so CONFIG SETs are counted from
the Event the operator posts for each one (per node), and the value on every node is checked
to be the owner's. The setting is `latency-monitor-threshold`,
which no other test declares; its value is restored, and the claims released, afterwards (the
cluster is shared).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from e2e_full import create_example_secrets
from e2e_operator import (
    APP_SCHEMA,
    OperatorFactory,
    conditions,
    get_json,
    kubectl,
    said_actions,
    wait_for,
)
from e2e_proxy import PlainCountingProxy, plain_counting_proxy

from lokifi_storage.api import conditions as types
from stackfixtures import (
    REDIS_CLAIMS_KEY,
    PgDatabase,
    StackEnv,
    empty_and_delete_bucket,
    release_redis_claims,
    restore_redis_setting,
    unique_name,
)

SETTING = "latency-monitor-threshold"
RULE = "expire-scratch"
RESYNC = 2.0


@pytest.fixture
def world(
    kube_stack: StackEnv,
    k8s_namespace: str,
    pg_database: PgDatabase,
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, Any]]:
    """Two namespaces with the example's Secrets, one database with the app's tables, one bucket;
    the setting restored and every claim of the two namespaces released afterwards."""
    with psycopg.connect(pg_database.primary_url, autocommit=True) as conn:
        conn.execute(APP_SCHEMA.read_bytes())
    second = unique_name(f"b-{request.node.name}", 63, sep="-")
    kubectl(kube_stack, "create", "namespace", second)
    for ns in (k8s_namespace, second):
        create_example_secrets(kube_stack, ns, pg_database)
    bucket = unique_name(f"claims-{request.node.name}", 63, sep="-")
    kube_stack.s3_client().create_bucket(Bucket=bucket)
    cluster = kube_stack.redis_cluster()
    original = cluster.config_get(SETTING, target_nodes=cluster.ALL_NODES)
    try:
        yield {"namespaces": (k8s_namespace, second), "db": pg_database, "bucket": bucket}
    finally:
        restore_redis_setting(cluster, SETTING, original)
        cluster.close()
        release_redis_claims(kube_stack, [k8s_namespace, second])
        kubectl(kube_stack, "delete", "namespace", second, "--wait=false", "--ignore-not-found")
        empty_and_delete_bucket(kube_stack, bucket)


def lifecycle_puts(proxy: PlainCountingProxy, since: float) -> list[str]:
    return [
        f"{r.method} {r.path}?{r.query}"
        for r in proxy.writes(since=since)
        if r.method == "PUT" and "lifecycle" in r.query
    ]


def resource(
    stack: StackEnv,
    namespace: str,
    name: str,
    bucket: str,
    *,
    threshold: int,
    days: int,
    premake: int,
    endpoint: str | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "storage.lokifi.ai/v1alpha1",
        "kind": "LokifiStorage",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "postgres": {
                "primary": {"secretRef": {"name": "lokifi-db", "key": "url"}},
                "tables": [
                    {
                        "name": "ai_messages",
                        "partitionBy": {"column": "created_at", "interval": "month"},
                        "premake": premake,
                    }
                ],
            },
            "redis": {
                "nodes": [{"host": host, "port": port} for host, port in stack.redis_nodes[:3]],
                "passwordSecretRef": {"name": "lokifi-redis", "key": "password"},
                "settings": {SETTING: str(threshold)},
            },
            "objectStorage": {
                "endpoint": endpoint or stack.s3_endpoint,
                "allowPlainHttp": True,
                "region": stack.aws_region,
                "credentialsSecretRef": {"name": "lokifi-s3"},
                "buckets": [
                    {
                        "name": bucket,
                        "lifecycle": [{"id": RULE, "prefix": "scratch/", "expirationDays": days}],
                    }
                ],
            },
        },
    }


def apply(stack: StackEnv, obj: dict[str, Any]) -> None:
    kubectl(stack, "apply", "-f", "-", input_text=json.dumps(obj))


def writes(stack: StackEnv, namespace: str, name: str) -> list[str]:
    """The CONFIG SETs and lifecycle PUTs the operator reported for this resource."""
    return [
        action
        for action in said_actions(stack, namespace, name)
        if action.startswith(f"CONFIG SET {SETTING}") or ": lifecycle rules " in action
    ]


def live_values(stack: StackEnv, bucket: str) -> tuple[set[str], list[int]]:
    cluster = stack.redis_cluster()
    try:
        per_node = cluster.config_get(SETTING, target_nodes=cluster.ALL_NODES)
    finally:
        cluster.close()
    rules = stack.s3_client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    days = [r["Expiration"]["Days"] for r in rules if r["ID"] == RULE]
    return {v[SETTING] for v in per_node.values()}, days


def redis_claim_owner(stack: StackEnv) -> str:
    cluster = stack.redis_cluster()
    try:
        text = cluster.hgetall(REDIS_CLAIMS_KEY).get(SETTING)
    finally:
        cluster.close()
    return str(json.loads(text)["owner"]) if text else ""


def table_comment(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT obj_description('ai_messages'::regclass, 'pg_class')").fetchone()
    return str(row[0]) if row else ""


def stalled_by_conflict(stack: StackEnv, namespace: str, name: str) -> dict[str, Any] | None:
    conds = conditions(get_json(stack, namespace, "lks", name))
    stalled = conds.get(types.STALLED, {})
    return conds if stalled.get("status") == "True" else None


def test_second_resource_with_other_values_is_stalled_and_resyncs_do_not_fight(
    world: dict[str, Any], kube_stack: StackEnv, start_operator: OperatorFactory
) -> None:
    stack, (ns_a, ns_b), bucket = kube_stack, world["namespaces"], world["bucket"]
    with plain_counting_proxy(stack.s3_endpoint) as s3:
        owner = resource(
            stack, ns_a, "owner", bucket, threshold=101, days=30, premake=2, endpoint=s3.url
        )
        rival = resource(
            stack, ns_b, "rival", bucket, threshold=202, days=60, premake=3, endpoint=s3.url
        )
        apply(stack, owner)
        operator_a = start_operator(ns_a, resync_seconds=RESYNC)
        kubectl(stack, "-n", ns_a, "wait", "--for=condition=Ready", "lks/owner", "--timeout=120s")
        assert lifecycle_puts(s3, 0.0), "the owner put its rule through the proxy"

        apply(stack, rival)
        operator_b = start_operator(ns_b, resync_seconds=RESYNC)
        conds = wait_for(lambda: stalled_by_conflict(stack, ns_b, "rival"), 120, "rival Stalled")
        for kind in (types.REDIS_READY, types.OBJECT_STORAGE_READY, types.PARTITIONS_READY):
            assert conds[kind]["status"] == "False", conds[kind]
            assert conds[kind]["reason"] == "Conflict", conds[kind]
            assert f"{ns_a}/owner" in conds[kind]["message"], conds[kind]
        assert conds[types.RECONCILING]["status"] == "False"
        assert f"{ns_a}/owner" in conds[types.STALLED]["message"]
        assert writes(stack, ns_b, "rival") == []

        owner_writes = writes(stack, ns_a, "owner")
        assert owner_writes, "the owner wrote its setting and rule"
        start = time.monotonic()
        passes_a = operator_a.log().count("reconciled ")
        passes_b = operator_b.log().count("reconciled ")
        wait_for(
            lambda: (
                operator_a.log().count("reconciled ") >= passes_a + 3
                and operator_b.log().count("reconciled ") >= passes_b + 3
            ),
            60,
            "three resyncs of each operator",
        )
        assert lifecycle_puts(s3, start) == []
        assert s3.writes(since=start) == []  # no tag PUT either
        # The owner's writes after the first pass can only be repairs of a node another test
        # restarted, and then with its own value: the two never write each other's.
        later = writes(stack, ns_a, "owner")[len(owner_writes) :]
        assert all(w.startswith(f"CONFIG SET {SETTING} 101 ") for w in later), later
        assert writes(stack, ns_b, "rival") == []
        assert live_values(stack, bucket) == ({"101"}, [30])
        assert f"lokifi-storage: managed by {ns_a}/owner" in table_comment(world["db"].primary_url)
        assert redis_claim_owner(stack) == f"{ns_a}/owner"

        # Deleting the owner releases its claims; the rival then takes over with its values.
        kubectl(stack, "-n", ns_a, "delete", "lks", "owner", "--wait=true", "--timeout=60s")
        wait_for(
            lambda: redis_claim_owner(stack) != f"{ns_a}/owner", 60, "the owner's claim released"
        )
        kubectl(stack, "-n", ns_b, "wait", "--for=condition=Ready", "lks/rival", "--timeout=120s")
        assert live_values(stack, bucket) == ({"202"}, [60])
        assert writes(stack, ns_b, "rival")
        assert redis_claim_owner(stack) == f"{ns_b}/rival"
        assert f"lokifi-storage: managed by {ns_b}/rival" in table_comment(world["db"].primary_url)


def test_equal_values_share_without_conflict(
    world: dict[str, Any], kube_stack: StackEnv, start_operator: OperatorFactory
) -> None:
    stack, (ns_a, ns_b), bucket = kube_stack, world["namespaces"], world["bucket"]
    apply(stack, resource(stack, ns_a, "first", bucket, threshold=303, days=40, premake=2))
    start_operator(ns_a, resync_seconds=RESYNC)
    kubectl(stack, "-n", ns_a, "wait", "--for=condition=Ready", "lks/first", "--timeout=120s")
    apply(stack, resource(stack, ns_b, "second", bucket, threshold=303, days=40, premake=2))
    start_operator(ns_b, resync_seconds=RESYNC)
    kubectl(stack, "-n", ns_b, "wait", "--for=condition=Ready", "lks/second", "--timeout=120s")
    time.sleep(2 * RESYNC)
    # Nothing but the shared value, ever: a node restarted by another test of the shared
    # cluster may be repaired by either resource, always to 303.
    assert all(w.startswith(f"CONFIG SET {SETTING} 303 ") for w in writes(stack, ns_b, "second"))
    assert live_values(stack, bucket) == ({"303"}, [40])
    conds = conditions(get_json(stack, ns_b, "lks", "second"))
    assert conds[types.STALLED]["status"] == "False"
