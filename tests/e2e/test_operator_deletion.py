"""Deleting a LokifiStorage: Retain (the default) keeps every database object, Redis setting and
S3 rule and only lets Kubernetes garbage-collect the objects the operator owns, with no
finalizer in the way; Delete puts a finalizer on the resource and first removes what the
operator itself created (its lifecycle rules, the archive table while empty), nothing else."""

from __future__ import annotations

import psycopg
from e2e_full import FullExample
from e2e_operator import OperatorFactory, get_json, kubectl, wait_for

OWNED = (
    ("secret", "lokifi-db-conn"),
    ("cronjob", "lokifi-prod-backup-daily"),
    ("cronjob", "lokifi-prod-vacuum"),
)


FOREIGN_RULE = {
    "ID": "KeptByOthers",
    "Filter": {"Prefix": "tmp/"},
    "Status": "Enabled",
    "Expiration": {"Days": 3},
}


def tables(full_example: FullExample) -> set[str]:
    """schema.table of every table in the database (partitions included)."""
    with psycopg.connect(full_example.database.primary_url) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return {row[0] for row in rows}


def rule_ids(full_example: FullExample) -> set[str]:
    s3 = full_example.stack.s3_client()
    try:
        config = s3.get_bucket_lifecycle_configuration(Bucket=full_example.buckets["media"])
    except s3.exceptions.ClientError as error:
        if "NoSuchLifecycleConfiguration" in str(error):
            return set()
        raise
    return {rule["ID"] for rule in config["Rules"]}


def add_foreign_rule(full_example: FullExample) -> None:
    full_example.stack.s3_client().put_bucket_lifecycle_configuration(
        Bucket=full_example.buckets["media"], LifecycleConfiguration={"Rules": [FOREIGN_RULE]}
    )


def test_retain_has_no_finalizer_and_deletion_keeps_the_data(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    add_foreign_rule(full_example)
    full_example.apply()
    start_operator(ns)
    full_example.wait_ready()
    obj = full_example.get()
    assert obj is not None
    assert not obj["metadata"].get("finalizers")
    assert "archive.ai_messages" in tables(full_example)
    assert rule_ids(full_example) == {"ArchiveOldFiles", "KeptByOthers"}
    for kind, name in OWNED:
        assert get_json(stack, ns, kind, name) is not None
    tables_before = tables(full_example)

    kubectl(stack, "-n", ns, "delete", "lks", "lokifi-prod", "--wait=true", "--timeout=30s")
    for kind, name in OWNED:
        wait_for(
            lambda kind=kind, name=name: get_json(stack, ns, kind, name) is None,  # type: ignore[misc]
            60,
            f"{kind}/{name} to be garbage-collected",
        )
    assert get_json(stack, ns, "secret", "lokifi-db") is not None  # referenced, not owned
    assert tables(full_example) == tables_before
    assert rule_ids(full_example) == {"ArchiveOldFiles", "KeptByOthers"}
    cluster = stack.redis_cluster()
    try:
        maxmemory = cluster.config_get("maxmemory", target_nodes=cluster.ALL_NODES)
    finally:
        cluster.close()
    assert {v["maxmemory"] for v in maxmemory.values()} == {str(2 * 1024**3)}


def test_delete_policy_adds_a_finalizer_and_releases_the_resource_after_cleanup(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    add_foreign_rule(full_example)
    manifest = full_example.manifest().replace("deletionPolicy: Retain", "deletionPolicy: Delete")
    kubectl(stack, "apply", "-f", "-", input_text=manifest)
    operator = start_operator(ns)
    full_example.wait_ready()
    obj = wait_for(
        lambda: (o := full_example.get()) and o["metadata"].get("finalizers") and o,
        30,
        "the cleanup finalizer",
    )
    assert obj["metadata"]["finalizers"] == ["storage.lokifi.ai/cleanup"]
    live_partitions = {t for t in tables(full_example) if t.startswith("public.ai_messages_p")}
    assert live_partitions
    assert "archive.ai_messages" in tables(full_example)

    kubectl(stack, "-n", ns, "delete", "lks", "lokifi-prod", "--wait=true", "--timeout=60s")
    assert full_example.get() is None
    for kind, name in OWNED:
        wait_for(
            lambda kind=kind, name=name: get_json(stack, ns, kind, name) is None,  # type: ignore[misc]
            60,
            f"{kind}/{name} to be garbage-collected",
        )
    assert "cleaned up" in operator.log()
    after = tables(full_example)
    assert "archive.ai_messages" not in after  # empty, created by the operator: removed
    assert live_partitions <= after  # the data stays
    assert rule_ids(full_example) == {"KeptByOthers"}  # only the operator's rule is gone


def test_switching_back_to_retain_removes_the_finalizer(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    manifest = full_example.manifest().replace("deletionPolicy: Retain", "deletionPolicy: Delete")
    kubectl(stack, "apply", "-f", "-", input_text=manifest)
    start_operator(ns)
    wait_for(lambda: (o := full_example.get()) and o["metadata"].get("finalizers"), 60, "finalizer")

    full_example.apply()  # deletionPolicy: Retain again
    wait_for(
        lambda: (o := full_example.get()) is not None and not o["metadata"].get("finalizers"),
        60,
        "the finalizer to be removed",
    )
