"""Builders of owned objects (CronJobs, connection Secret, names) and the owned-object diff."""

from __future__ import annotations

import copy
import json
from typing import Any

from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.builders.cronjobs import JobSettings, desired_cronjobs
from lokifi_storage.builders.labels import Owner
from lokifi_storage.builders.names import CRONJOB_NAME_LIMIT, backup_cronjob_name
from lokifi_storage.builders.secret import build_connection_secret, decode_secret_data
from lokifi_storage.domain.schedule_diff import (
    DESIRED_HASH_ANNOTATION,
    contained_in,
    plan_owned_objects,
)

OWNER = Owner(namespace="lokifi", name="lokifi-prod", uid="0f1e2d3c-0000-4000-8000-000000000001")
SETTINGS = JobSettings(image="registry.example/lokifi-storage:1.0")


def spec(**overrides: Any) -> LokifiStorageSpec:
    body: dict[str, Any] = {
        "postgres": {"primary": {"secretRef": {"name": "lokifi-db", "key": "url"}}},
        "objectStorage": {"region": "eu-west-1", "credentialsSecretRef": {"name": "lokifi-s3"}},
        "backups": {
            "bucket": "lokifi-backups",
            "schedules": [
                {"name": "daily", "schedule": "0 2 * * *", "keep": 7},
                {"name": "monthly", "schedule": "0 4 1 * *", "keep": 12, "storageClass": "GLACIER"},
            ],
        },
        "maintenance": {
            "vacuum": {"schedule": "0 5 * * 0", "tables": ["ai_messages", "ai_threads"]}
        },
    }
    body.update(overrides)
    return LokifiStorageSpec.model_validate(body)


def jobs(s: LokifiStorageSpec | None = None) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in desired_cronjobs(OWNER, s or spec(), SETTINGS)}


def pod(job: dict[str, Any]) -> dict[str, Any]:
    spec_: dict[str, Any] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec_


def simulate_server(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: defaults filled in, extra metadata."""
    out = copy.deepcopy(obj)
    out["metadata"].update({"uid": "abc", "resourceVersion": "17", "generation": 1})
    out["spec"]["suspend"] = False
    container = pod(out)["containers"][0]
    container["terminationMessagePath"] = "/dev/termination-log"
    pod(out)["dnsPolicy"] = "ClusterFirst"
    return out


def test_one_cronjob_per_backup_schedule_and_one_for_vacuum() -> None:
    assert sorted(jobs()) == [
        "lokifi-prod-backup-daily",
        "lokifi-prod-backup-monthly",
        "lokifi-prod-vacuum",
    ]


def test_backup_cronjob_runs_the_cli_with_the_schedule_and_forbids_overlap() -> None:
    job = jobs()["lokifi-prod-backup-monthly"]
    container = pod(job)["containers"][0]
    assert container["command"] == ["lokifi-storage"]
    assert container["args"][:4] == ["backup", "create", "--schedule", "monthly"]
    assert "GLACIER" in container["args"]
    assert job["spec"]["schedule"] == "0 4 1 * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["spec"]["successfulJobsHistoryLimit"] >= 1
    assert job["spec"]["failedJobsHistoryLimit"] >= 1
    assert container["image"] == "registry.example/lokifi-storage:1.0"


def test_cronjobs_run_under_the_restricted_security_context_with_resources() -> None:
    for job in jobs().values():
        pod_spec = pod(job)
        container = pod_spec["containers"][0]
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod_spec["securityContext"]["runAsNonRoot"] is True
        assert pod_spec["automountServiceAccountToken"] is False
        assert set(container["resources"]) == {"requests", "limits"}


def test_credentials_reach_the_job_only_through_secret_key_refs() -> None:
    container = pod(jobs()["lokifi-prod-backup-daily"])["containers"][0]
    by_name = {e["name"]: e for e in container["env"]}
    assert by_name["LOKIFI_PRIMARY_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "lokifi-db",
        "key": "url",
    }
    assert "valueFrom" in by_name["AWS_SECRET_ACCESS_KEY"]
    assert "value" not in by_name["AWS_SECRET_ACCESS_KEY"]
    text = json.dumps(container["args"])
    assert "lokifi-db" not in text
    assert "postgresql://" not in json.dumps(jobs())


def test_cronjobs_are_owned_by_the_resource() -> None:
    for job in jobs().values():
        (ref,) = job["metadata"]["ownerReferences"]
        assert ref["uid"] == OWNER.uid
        assert ref["controller"] is True
        assert ref["kind"] == "LokifiStorage"


def test_long_names_are_bounded_and_stay_distinct() -> None:
    a = backup_cronjob_name("x" * 60, "daily")
    b = backup_cronjob_name("x" * 60, "weekly")
    assert len(a) <= CRONJOB_NAME_LIMIT
    assert len(b) <= CRONJOB_NAME_LIMIT
    assert a != b


def test_unchanged_cronjobs_as_the_server_returns_them_need_no_write() -> None:
    desired = list(jobs().values())
    observed = [simulate_server(j) for j in desired]
    assert not plan_owned_objects(desired, observed)


def test_a_changed_schedule_patches_only_that_cronjob() -> None:
    observed = [simulate_server(j) for j in jobs().values()]
    changed = spec(
        backups={
            "bucket": "lokifi-backups",
            "schedules": [
                {"name": "daily", "schedule": "30 2 * * *", "keep": 7},
                {"name": "monthly", "schedule": "0 4 1 * *", "keep": 12, "storageClass": "GLACIER"},
            ],
        }
    )
    plan = plan_owned_objects(list(jobs(changed).values()), observed)
    assert [j["metadata"]["name"] for j in plan.patch] == ["lokifi-prod-backup-daily"]
    assert plan.create == []
    assert plan.delete == []


def test_a_removed_schedule_deletes_its_cronjob_and_a_new_one_is_created() -> None:
    observed = [simulate_server(j) for j in jobs().values()]
    changed = spec(
        backups={
            "bucket": "lokifi-backups",
            "schedules": [
                {"name": "daily", "schedule": "0 2 * * *", "keep": 7},
                {"name": "weekly", "schedule": "0 3 * * 0", "keep": 4},
            ],
        }
    )
    plan = plan_owned_objects(list(jobs(changed).values()), observed)
    assert [j["metadata"]["name"] for j in plan.create] == ["lokifi-prod-backup-weekly"]
    assert plan.delete == ["lokifi-prod-backup-monthly"]
    assert plan.patch == []


def test_a_hand_edit_of_an_owned_field_is_drift_to_repair() -> None:
    desired = list(jobs().values())
    observed = [simulate_server(j) for j in desired]
    observed[0]["spec"]["concurrencyPolicy"] = "Allow"
    plan = plan_owned_objects(desired, observed)
    assert [j["metadata"]["name"] for j in plan.patch] == [observed[0]["metadata"]["name"]]


def test_an_env_var_someone_else_added_is_not_drift() -> None:
    desired = list(jobs().values())
    observed = [simulate_server(j) for j in desired]
    pod(observed[0])["containers"][0]["env"].append({"name": "TZ", "value": "UTC"})
    assert not plan_owned_objects(desired, observed)


def test_a_changed_image_changes_the_desired_hash() -> None:
    other = desired_cronjobs(
        OWNER, spec(), JobSettings(image="registry.example/lokifi-storage:2.0")
    )
    first = jobs()["lokifi-prod-vacuum"]["metadata"]["annotations"][DESIRED_HASH_ANNOTATION]
    second = {j["metadata"]["name"]: j for j in other}["lokifi-prod-vacuum"]
    assert second["metadata"]["annotations"][DESIRED_HASH_ANNOTATION] != first


def test_without_backups_or_vacuum_there_are_no_cronjobs() -> None:
    assert desired_cronjobs(OWNER, spec(backups=None, maintenance=None), SETTINGS) == []


def test_connection_secret_round_trips_its_data_and_is_owned() -> None:
    data = {
        "DATABASE_URL": "postgresql+asyncpg://u:p%40ss@db:5432/app",
        "REDIS_CLUSTER_NODES": "r:7000",
    }
    secret = build_connection_secret(OWNER, "lokifi-db-conn", data)
    assert decode_secret_data(secret) == data
    assert secret["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert "stringData" not in secret


def test_contained_in_requires_atomic_lists_to_match_exactly() -> None:
    assert not contained_in({"args": ["a", "b"]}, {"args": ["a", "b", "c"]})
    assert contained_in({"args": ["a", "b"]}, {"args": ["a", "b"], "extra": 1})
