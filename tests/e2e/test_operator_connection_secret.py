"""The connection Secret follows replica health: a replica that stops is taken out of it (reads
fall back to the primary) and put back when it returns, with no spec change."""

from __future__ import annotations

import base64
import time

import yaml
from e2e_full import FullExample
from e2e_operator import (
    OperatorFactory,
    conditions,
    create_secret,
    get_json,
    kubectl,
    said_actions,
    wait_for,
)

from lokifi_storage.api import conditions as types
from stackfaults import stopped_pg_replica


def secret_data(full_example: FullExample) -> dict[str, str]:
    secret = get_json(full_example.stack, full_example.namespace, "secret", "lokifi-db-conn")
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def host_port(url: str) -> str:
    return url.split("@", 1)[1].split("/", 1)[0]


def test_stopped_replica_leaves_the_secret_and_comes_back(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    full_example.run_ready(start_operator, resync_seconds=2)
    primary = host_port(full_example.database.primary_url)
    replica = host_port(full_example.database.replica_url)
    assert host_port(secret_data(full_example)["DATABASE_REPLICA_URL"]) == replica

    with stopped_pg_replica():
        wait_for(
            lambda: host_port(secret_data(full_example)["DATABASE_REPLICA_URL"]) == primary,
            60,
            "DATABASE_REPLICA_URL to fall back to the primary",
        )
        data = secret_data(full_example)
        assert host_port(data["DATABASE_URL"]) == primary
        assert [host_port(u) for u in data["DATABASE_REPLICA_URLS"].split(",")] == [primary]
        conds = conditions(full_example.get())
        assert conds[types.REPLICAS_READY]["status"] == "False"
        assert "replica-1" in conds[types.REPLICAS_READY]["message"]
        assert conds[types.POSTGRES_READY]["status"] == "True"

    wait_for(
        lambda: host_port(secret_data(full_example)["DATABASE_REPLICA_URL"]) == replica,
        120,
        "the replica to be back in the Secret",
    )
    full_example.wait_ready("60s")


def secret_exists(full_example: FullExample, name: str) -> bool:
    return get_json(full_example.stack, full_example.namespace, "secret", name) is not None


def recorded_secret(full_example: FullExample) -> str | None:
    obj = full_example.get() or {}
    name = (obj.get("status", {}).get("connectionSecret") or {}).get("name")
    return None if name is None else str(name)


def test_renamed_connection_secret_replaces_the_old_one_unless_another_owner_took_it(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    operator = full_example.run_ready(start_operator, resync_seconds=2)
    assert recorded_secret(full_example) == "lokifi-db-conn"

    full_example.apply(conn_secret="lokifi-db-conn-v2")
    wait_for(
        lambda: (
            recorded_secret(full_example) == "lokifi-db-conn-v2"
            and not secret_exists(full_example, "lokifi-db-conn")
        ),
        60,
        "lokifi-db-conn-v2 recorded and lokifi-db-conn deleted",
    )
    v2 = get_json(stack, ns, "secret", "lokifi-db-conn-v2")
    assert v2 is not None
    assert "DATABASE_URL" in v2["data"]
    actions = said_actions(stack, ns, "lokifi-prod")
    assert "deleted connection Secret lokifi-db-conn: renamed to lokifi-db-conn-v2" in actions

    # While the operator is down, someone takes v2 over (drops its ownerReference) and the spec
    # is renamed again: the new Secret is written, the taken-over one is left alone.
    operator.stop()
    kubectl(
        stack, "-n", ns, "patch", "secret", "lokifi-db-conn-v2", "--type=json",
        "-p", '[{"op": "remove", "path": "/metadata/ownerReferences"}]',
    )  # fmt: skip
    full_example.apply(conn_secret="lokifi-db-conn-v3")
    start_operator(ns, resync_seconds=2)
    wait_for(
        lambda: recorded_secret(full_example) == "lokifi-db-conn-v3",
        60,
        "lokifi-db-conn-v3 recorded",
    )
    assert secret_exists(full_example, "lokifi-db-conn-v3")
    kept = get_json(stack, ns, "secret", "lokifi-db-conn-v2")
    assert kept is not None, "a Secret this resource no longer controls was deleted"
    assert "ownerReferences" not in kept["metadata"]


def test_an_existing_secret_this_resource_does_not_control_is_never_adopted(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    """A hand-made Secret (no owner) already carries the connectionSecret's name: the operator
    neither adopts it (an ownerReference would let the garbage collector delete it with the
    resource) nor changes its data, and says so on PostgresReady with the fix."""
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    create_secret(stack, ns, "lokifi-db-conn", DATABASE_URL="postgresql://kept@elsewhere/app")
    before = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert before is not None
    full_example.apply()
    start_operator(ns, resync_seconds=2)

    def conflict() -> dict[str, str] | None:
        cond = conditions(full_example.get()).get(types.POSTGRES_READY)
        return cond if cond and cond.get("reason") == "SecretConflict" else None

    cond = wait_for(conflict, 90, "PostgresReady=False/SecretConflict")
    assert cond["status"] == "False"
    assert "lokifi-db-conn" in cond["message"]
    assert "postgres.connectionSecret.name" in cond["message"]
    time.sleep(6)  # three more resyncs (every 2 s): still untouched
    after = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert after is not None
    assert after["data"] == before["data"]
    assert "ownerReferences" not in after["metadata"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # The fix the message names: another name. The hand-made Secret stays as it was.
    full_example.apply(conn_secret="lokifi-db-conn-operator")
    full_example.wait_ready()
    assert secret_exists(full_example, "lokifi-db-conn-operator")
    kept = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert kept is not None
    assert kept["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_keys_the_spec_no_longer_produces_leave_the_secret(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    """spec.redis removed: its keys leave the Secret. The Secret was created by a POST, whose
    field manager co-owns every key it wrote, so server-side apply alone left them there for
    good (the key was reported updated and stayed). Then nothing more is written."""
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    full_example.run_ready(start_operator, resync_seconds=2)
    assert {"REDIS_CLUSTER_NODES", "REDIS_CONTEXT_TTL_SECONDS"} <= set(secret_data(full_example))

    manifest = yaml.safe_load(full_example.manifest())
    del manifest["spec"]["redis"]
    kubectl(stack, "apply", "-f", "-", input_text=yaml.safe_dump(manifest))
    wait_for(
        lambda: not any(k.startswith("REDIS_") for k in secret_data(full_example)),
        60,
        "the REDIS_* keys to leave the connection Secret",
    )
    assert "DATABASE_URL" in secret_data(full_example)
    settled = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert settled is not None
    time.sleep(6)  # three more resyncs: nothing left to write
    after = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"]
