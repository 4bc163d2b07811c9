"""The admin views are pure: the status screen, the plan text, the runbook, the manual Job."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from lokifi_storage.admin.kubectl_lks import job_from_cronjob
from lokifi_storage.admin.paint import ColorMode, Painter
from lokifi_storage.admin.plan_view import PlanView, plan_json, plan_text
from lokifi_storage.admin.runbook import restore_runbook
from lokifi_storage.admin.status_view import status_text
from lokifi_storage.api.status import Condition
from lokifi_storage.domain.change_plan import Change, FieldChange
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.results import ResourcePlan

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
BODY = {
    "metadata": {"name": "lokifi-prod", "namespace": "lokifi", "generation": 2},
    "spec": {
        "postgres": {
            "tables": [{"name": "ai_messages", "archive": {"schema": "archive", "afterDays": 365}}]
        },
        "backups": {
            "bucket": "lokifi-backups",
            "prefix": "backups/",
            "schedules": [{"name": "daily", "schedule": "0 2 * * *"}],
        },
        "objectStorage": {"endpoint": "http://s3.local", "region": "eu-west-1"},
    },
    "status": {
        "observedGeneration": 2,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}],
        "partitions": [{"table": "ai_messages", "count": 5, "inDefault": 0, "archived": 1}],
        "storage": {"largest": [{"name": "public.ai_messages", "bytes": 3 * 1024 * 1024}]},
        "backups": [
            {
                "schedule": "daily",
                "lastSuccessfulTime": "2026-05-10T02:00:00Z",
                "lastKey": "backups/lokifi-prod/daily/x.dump.zst",
                "count": 3,
                "lastVerifyResult": "Passed",
            }
        ],
    },
}


def test_status_screen_is_plain_unless_colour_is_on() -> None:
    plain = status_text(BODY, [], NOW, Painter(False))
    assert "\x1b[" not in plain
    assert "  ai_messages  5           -       -       0           1         3Mi" in plain
    assert "daily     0 2 * * *  2026-05-10T02:00:00Z  10h" in plain
    assert "  ai_messages: archive to archive after 365d" in plain
    assert "\x1b[32mTrue\x1b[0m" in status_text(BODY, [], NOW, Painter(True))
    assert Painter.for_stream(ColorMode.AUTO, stream=open("/dev/null", "w")).enabled is False  # noqa: SIM115


def test_runbook_fills_in_the_newest_backup_and_the_stores_address() -> None:
    steps = restore_runbook(BODY, schedule="daily")
    assert "--backup, backups/lokifi-prod/daily/x.dump.zst" in steps
    assert "--endpoint, http://s3.local, --region, eu-west-1, --prefix, backups/" in steps
    assert "--from=cronjob/lokifi-prod-backup-daily" in steps
    # The backups' folder is the resource's namespace and name: both are passed.
    assert "--namespace, lokifi, --name, lokifi-prod" in steps
    assert "backup list --bucket lokifi-backups --namespace lokifi --name lokifi-prod" in steps
    assert "no backup schedule 'hourly'" in restore_runbook(BODY, schedule="hourly")


def test_manual_job_is_the_cronjobs_template_owned_by_it() -> None:
    cronjob = {
        "metadata": {"name": "lokifi-prod-backup-daily", "namespace": "lokifi", "uid": "u1"},
        "spec": {"jobTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}}},
    }
    job = job_from_cronjob(cronjob, "j")
    assert job["spec"] == {"x": 1}
    assert job["metadata"]["labels"] == {"a": "b"}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u1"


def test_plan_text_groups_by_part_and_an_unobserved_part_makes_it_incomplete() -> None:
    change = Change(
        "redis",
        "n1:7000",
        "update",
        "CONFIG SET maxmemory 1 -> 2 on n1:7000",
        (FieldChange("maxmemory", "1", "2"),),
    )
    down = PartReport(
        condition=Condition(
            type="ObjectStorageReady",
            status="False",
            reason="EndpointUnreachable",
            message="s3 down",
        )
    )
    view = PlanView("lokifi", "lokifi-prod", ResourcePlan(reports=(down,), changes=(change,)))
    text = plan_text(view, Painter(False))
    assert "redis\n  n1:7000\n    ~ CONFIG SET maxmemory 1 -> 2 on n1:7000\n" in text
    assert "        maxmemory: 1 -> 2\n" in text
    assert "  ObjectStorageReady (EndpointUnreachable): s3 down\n" in text
    assert text.endswith("Plan: 0 to create, 1 to change, 0 to delete (redis 1).\n")
    assert plan_json(view)["complete"] is False


def test_status_screen_says_which_verification_ran_and_which_schedule_is_not_verified() -> None:
    body = copy.deepcopy(BODY)
    body["spec"]["backups"]["schedules"].append(
        {"name": "monthly", "schedule": "0 4 1 * *", "storageClass": "GLACIER"}
    )
    body["status"]["backups"][0]["lastVerifyKind"] = "Archive"
    body["status"]["backups"].append({"schedule": "monthly", "lastVerifyKind": "NotVerified"})
    plain = status_text(body, [], NOW, Painter(False))
    assert "Passed (Archive)" in plain
    assert "NOT VERIFIED" in plain
