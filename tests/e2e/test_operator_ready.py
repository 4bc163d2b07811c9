"""Apply the full example -> Ready, with every part condition, the Secret and the CronJobs,
shown by `kubectl get lks` and `kubectl describe` the way an admin sees them."""

from __future__ import annotations

import base64

from e2e_full import FullExample, expected_months, partitions
from e2e_operator import (
    OperatorFactory,
    conditions,
    events,
    get_json,
    kubectl,
    said_actions,
    wait_for,
)

from lokifi_storage.api import conditions as types
from lokifi_storage.reconcile.resource import PARTS


def expected_part_conditions() -> set[str]:
    """Part conditions of every part the reconciler runs."""
    return {kind for part in PARTS for kind in part.conditions}


def test_full_example_becomes_ready_with_every_part_condition_true(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    full_example.create_secrets()
    full_example.apply()
    start_operator(full_example.namespace)

    kubectl(
        full_example.stack,
        "-n",
        full_example.namespace,
        "wait",
        "--for=condition=Ready",
        f"lokifistorage/{full_example.name}",
        "--timeout=120s",
    )
    obj = full_example.get()
    assert obj is not None
    conds = conditions(obj)
    generation = obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] == generation
    for kind in expected_part_conditions() | {types.READY}:
        assert conds[kind]["status"] == "True", conds[kind]
        assert conds[kind]["observedGeneration"] == generation
        assert conds[kind]["lastTransitionTime"]
    assert conds[types.RECONCILING]["status"] == "False"
    assert conds[types.STALLED]["status"] == "False"

    # The real servers hold what the spec declares.
    assert expected_months(3) <= partitions(full_example, "ai_messages")
    assert obj["status"]["summary"]["partitions"] >= 4
    cluster = full_example.stack.redis_cluster()
    try:
        policy = cluster.config_get("maxmemory-policy", target_nodes=cluster.ALL_NODES)
    finally:
        cluster.close()
    assert {v["maxmemory-policy"] for v in policy.values()} == {"allkeys-lru"}
    rules = full_example.stack.s3_client().get_bucket_lifecycle_configuration(
        Bucket=full_example.buckets["media"]
    )["Rules"]
    assert [r["ID"] for r in rules] == ["ArchiveOldFiles"]
    assert [t["StorageClass"] for t in rules[0]["Transitions"]] == ["GLACIER", "DEEP_ARCHIVE"]


def test_connection_secret_and_cronjobs_are_written_and_owned(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    full_example.run_ready(start_operator)
    stack, ns = full_example.stack, full_example.namespace
    uid = full_example.get()["metadata"]["uid"]  # type: ignore[index]

    secret = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert data["DATABASE_REPLICA_URL"].endswith(full_example.database.name)
    assert data["DATABASE_POOL_SIZE"] == "20"
    assert data["REDIS_CLUSTER_NODES"] == "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == uid

    cronjobs = get_json(stack, ns, "cronjobs")
    assert cronjobs is not None
    by_name = {c["metadata"]["name"]: c for c in cronjobs["items"]}
    assert set(by_name) == {
        "lokifi-prod-backup-daily",
        "lokifi-prod-backup-weekly",
        "lokifi-prod-backup-monthly",
        "lokifi-prod-vacuum",
        "lokifi-prod-partitions-compress",
        "lokifi-prod-partitions-export",
    }
    daily = by_name["lokifi-prod-backup-daily"]
    assert daily["spec"]["schedule"] == "0 2 * * *"
    assert daily["spec"]["concurrencyPolicy"] == "Forbid"
    assert daily["metadata"]["ownerReferences"][0]["uid"] == uid
    container = daily["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/lokifi-storage:e2e"
    assert container["args"][:4] == ["backup", "create", "--schedule", "daily"]
    assert all("value" not in e for e in container["env"] if e["name"].endswith(("URL", "KEY")))
    assert full_example.database.primary_url not in str(cronjobs)


def test_kubectl_get_shows_ready_and_describe_shows_conditions_and_events(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    operator = full_example.run_ready(start_operator)
    stack, ns = full_example.stack, full_example.namespace

    def series() -> list[str]:
        return [line for line in operator.metrics().splitlines() if f'namespace="{ns}"' in line]

    exposed = wait_for(
        lambda: (
            (lines := series())
            and any(line.startswith("lokifi_storage_condition{") for line in lines)
            and lines
        ),
        30,
        "the resource's condition series",
    )
    assert any(line.startswith("lokifi_storage_reconcile_duration_seconds") for line in exposed)

    table = kubectl(stack, "-n", ns, "get", "lks").splitlines()
    header = table[0].split()
    row = dict(zip(header, table[1].split(), strict=False))
    assert header[:2] == ["NAME", "READY"]
    assert row["NAME"] == "lokifi-prod"
    assert row["READY"] == "True"
    assert "REPLICA" in header  # Replica Lag column, filled from status.summary
    wide = kubectl(stack, "-n", ns, "get", "lks", "-o", "wide")
    assert "Reconciled" in wide

    described = kubectl(stack, "-n", ns, "describe", "lks", "lokifi-prod")
    assert "Conditions:" in described
    for kind in expected_part_conditions():
        assert kind in described
    posted = events(stack, ns, "lokifi-prod")
    messages = [e["message"] for e in posted]
    actions = said_actions(stack, ns, "lokifi-prod")
    assert any(a.startswith("created CronJob lokifi-prod-backup-daily") for a in actions), messages
    assert any(a.startswith("created connection Secret lokifi-db-conn") for a in actions), actions
    assert {e["reportingComponent"] for e in posted} == {"lokifi-storage-operator"}
    assert "Reconciled" in described
