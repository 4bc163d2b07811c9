"""`lokifi-storage plan -f resource.yaml` on the seed's resource against the live stack.

Before the operator ever ran, the plan lists every part's writes (partitions to create, Redis
CONFIG SET per node old -> new, the bucket's lifecycle rule, the connection Secret's keys, the
CronJobs), exits 2, and changes nothing. After the operator reconciled the same manifest, the
plan is empty and exits 0: the plan and the reconcile are the same pass, one without apply.
"""

from __future__ import annotations

import json
from pathlib import Path

from e2e_full import FullExample, partitions
from e2e_operator import OperatorFactory, get_json, kubectl
from e2e_seed import (
    EXTRA,
    SETTING,
    VALUE,
    apply_seed,
    lokifi_storage,
    restored_setting,
    seed_manifest,
    setting_on_nodes,
)


def test_plan_lists_every_part_changes_nothing_and_is_empty_once_reconciled(
    full_example: FullExample, start_operator: OperatorFactory, tmp_path: Path
) -> None:
    stack = full_example.stack
    full_example.create_secrets()
    manifest = tmp_path / "lokifistorage.yaml"
    manifest.write_text(seed_manifest(full_example, redis_extra=EXTRA))
    with restored_setting(stack) as before:
        assert VALUE not in before.values()
        _plan_then_reconcile(full_example, start_operator, manifest, before)


def _plan_then_reconcile(
    full_example: FullExample,
    start_operator: OperatorFactory,
    manifest: Path,
    before: dict[str, str],
) -> None:
    stack, ns = full_example.stack, full_example.namespace

    result = lokifi_storage(stack, "plan", "-f", str(manifest), "-o", "json")
    assert result.returncode == 2, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert plan["complete"] is True, plan["notPlanned"]
    changes = plan["changes"]
    by_part: dict[str, list[dict[str, object]]] = {}
    for change in changes:
        by_part.setdefault(str(change["part"]), []).append(change)
    assert set(by_part) == {"partitions", "redis", "objectStorage", "connectionSecret", "cronJobs"}

    # Redis: one CONFIG SET per node of the cluster, old -> new.
    redis: dict[str, list[object]] = {}
    for change in by_part["redis"]:
        redis.setdefault(str(change["target"]), []).extend(change["fields"])  # type: ignore[arg-type]
    assert set(redis) == set(before), "every node the cluster has, masters and replicas"
    for node, fields in redis.items():
        assert {"name": SETTING, "old": before[node], "new": VALUE} in fields
    # S3: the media bucket's declared rule is added.
    (bucket,) = by_part["objectStorage"]
    assert bucket["target"] == full_example.buckets["media"]
    assert {"name": "rule ArchiveOldFiles", "new": "added"} in bucket["fields"]
    # The connection Secret: created, its keys named, no value anywhere in the output.
    (secret,) = by_part["connectionSecret"]
    assert (secret["kind"], secret["target"]) == ("create", "lokifi-db-conn")
    keys = {f["name"] for f in secret["fields"]}
    assert {"DATABASE_URL", "REDIS_CLUSTER_NODES"} <= keys
    assert all(set(f) == {"name"} for f in secret["fields"])
    assert full_example.database.primary_url not in result.stdout
    assert stack.redis_password not in result.stdout
    assert stack.aws_secret_access_key not in result.stdout
    # CronJobs: three backups, VACUUM, and the partitions compress and export Jobs.
    assert {c["target"] for c in by_part["cronJobs"]} == {
        "lokifi-prod-backup-daily",
        "lokifi-prod-backup-weekly",
        "lokifi-prod-backup-monthly",
        "lokifi-prod-vacuum",
        "lokifi-prod-partitions-compress",
        "lokifi-prod-partitions-export",
    }
    # Partitions: the months ahead, each split in user ranges, and the archive table.
    details = [str(c["detail"]) for c in by_part["partitions"]]
    assert any("with 3 sub-partitions" in d for d in details), details
    assert any(d.startswith("create archive table archive.ai_messages") for d in details)
    assert plan["summary"] == (
        f"Plan: {plan['counts']['create']} to create, {plan['counts']['update']} to change, "
        f"{plan['counts']['delete']} to delete (partitions {len(by_part['partitions'])}, "
        f"redis {len(by_part['redis'])}, objectStorage 1, connectionSecret 1, cronJobs 6)."
    )

    # Nothing was changed by planning.
    assert partitions(full_example, "ai_messages") == set()
    assert setting_on_nodes(stack) == before
    s3 = stack.s3_client()
    assert "Rules" not in _lifecycle(s3, full_example.buckets["media"])
    assert get_json(stack, ns, "secret", "lokifi-db-conn") is None
    assert json.loads(kubectl(stack, "-n", ns, "get", "cronjobs", "-o", "json"))["items"] == []

    # The text form, piped: plain, grouped, ending with the summary line.
    text = lokifi_storage(stack, "plan", "-f", str(manifest))
    assert text.returncode == 2, text.stderr
    assert "\x1b[" not in text.stdout
    lines = text.stdout.splitlines()
    assert lines[-1] == plan["summary"]
    assert "redis" in lines
    assert "cronJobs" in lines
    assert f"        {SETTING}: {before['127.0.0.1:7000']} -> {VALUE}" in lines
    assert "        DATABASE_URL (value not shown)" in lines

    # The operator reconciles the same manifest; then there is nothing left to plan.
    apply_seed(full_example, redis_extra=EXTRA)
    start_operator(ns, resync_seconds=300)
    full_example.wait_ready("180s")
    after = lokifi_storage(stack, "plan", "-f", str(manifest), "-o", "json")
    assert after.returncode == 0, after.stdout + after.stderr
    assert json.loads(after.stdout)["changes"] == []
    assert set(setting_on_nodes(stack).values()) == {VALUE}


def _lifecycle(s3: object, bucket: str) -> dict[str, object]:
    from botocore.exceptions import ClientError

    try:
        reply: dict[str, object] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)  # type: ignore[attr-defined]
    except ClientError:
        return {}
    return reply
