"""The plan's shared shape: summaries, the fields a CronJob change names, Secret values hidden,
and what a dry-run pass makes of the part reports (conditions, status.plan, Events)."""

from __future__ import annotations

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import Condition, LokifiStorageStatus
from lokifi_storage.domain.change_plan import (
    Change,
    FieldChange,
    changed_fields,
    changes_from_json,
    plan_status,
    plan_summary,
)
from lokifi_storage.domain.conditions import read_status, status_json, summarize
from lokifi_storage.reconcile.dry_run import mark_dry_run
from lokifi_storage.reconcile.report import PartReport

SET = Change(
    "redis",
    "10.0.0.1:7000",
    "update",
    "CONFIG SET maxmemory 1gb -> 2gb on 10.0.0.1:7000",
    (FieldChange("maxmemory", "1gb", "2gb"),),
)
SECRET = Change(
    "connectionSecret",
    "app-conn",
    "update",
    "update connection Secret app-conn: DATABASE_URL",
    (FieldChange("DATABASE_URL", secret=True),),
)
PARTITION = Change("partitions", "ai_messages", "create", "create partition p2026_05")


def test_summary_counts_kinds_and_parts_in_plan_order() -> None:
    assert plan_summary([SECRET, SET, PARTITION]) == (
        "Plan: 1 to create, 2 to change, 0 to delete (partitions 1, redis 1, connectionSecret 1)."
    )
    assert plan_summary([]) == "No changes: the live state matches the spec."


def test_secret_fields_never_carry_values_and_survive_a_round_trip() -> None:
    public = SECRET.public()
    assert public["fields"] == [{"name": "DATABASE_URL"}]
    assert SECRET.fields[0].describe() == "DATABASE_URL (value not shown)"
    assert changes_from_json([public, SET.public()]) == [SECRET, SET]


def test_changed_fields_names_the_schedule_and_env_by_name() -> None:
    observed = {
        "spec": {
            "schedule": "0 2 * * *",
            "suspend": False,
            "template": {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "x"}]},
        }
    }
    desired = {
        "spec": {
            "schedule": "0 3 * * *",
            "template": {"env": [{"name": "B", "value": "y"}, {"name": "C", "value": "z"}]},
        }
    }
    assert changed_fields(desired, observed) == [
        FieldChange("spec.schedule", "0 2 * * *", "0 3 * * *"),
        FieldChange("spec.template.env[B].value", "x", "y"),
        FieldChange("spec.template.env[C]", None, "(added)"),
    ]
    assert changed_fields(observed, observed) == []


def _report(kind: str, planned: list[Change], status: str = "True") -> PartReport:
    return PartReport(
        condition=Condition(type=kind, status=status, reason=Reason.RECONCILED),  # type: ignore[arg-type]
        status=LokifiStorageStatus.model_validate({"redis": {"masters": 3}}),
        planned=planned,
    )


def test_dry_run_marks_parts_with_pending_changes_and_reports_the_plan_once() -> None:
    reports = [_report("RedisReady", [SET]), _report("PartitionsReady", [])]
    out, block, events = mark_dry_run(reports, 4, LokifiStorageStatus())
    assert out[0].condition.status == "False"
    assert out[0].condition.reason == Reason.DRY_RUN
    assert "CONFIG SET maxmemory 1gb -> 2gb" in out[0].condition.message
    assert out[1].condition.status == "True"
    # Sent exactly as the plan lists it (a field-less change has no `fields` key).
    assert status_json(LokifiStorageStatus(plan=block))["plan"] == plan_status([SET], 4)
    assert [e.reason for e in events] == [Reason.DRY_RUN, Reason.PLANNED]
    assert events[1].message == "would CONFIG SET maxmemory 1gb -> 2gb on 10.0.0.1:7000"
    # The same plan again (status.plan already says it): no Event, so no write.
    stored = read_status({"plan": plan_status([SET], 4)})
    _, again, repeated = mark_dry_run(reports, 4, stored)
    assert again == block
    assert repeated == []


def test_a_pending_dry_run_is_not_ready_but_neither_stalled_nor_retrying() -> None:
    out, _, _ = mark_dry_run(
        [_report("RedisReady", [SET]), _report("PartitionsReady", [PARTITION])],
        1,
        LokifiStorageStatus(),
    )
    ready, reconciling, stalled = summarize([r.condition for r in out])
    assert (ready.status, ready.reason) == ("False", Reason.DRY_RUN)
    assert reconciling.status == "False"
    assert stalled.status == "False"


def test_a_part_failing_for_its_own_reason_keeps_it_in_dry_run() -> None:
    failing = PartReport(
        condition=Condition(
            type="RedisReady", status="False", reason=Reason.CLUSTER_NOT_OK, message="down"
        ),
        planned=[SET],
    )
    out, block, _ = mark_dry_run([failing], 1, LokifiStorageStatus())
    assert out[0].condition.reason == Reason.CLUSTER_NOT_OK
    assert block.changes == 1
