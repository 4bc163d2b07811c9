"""Status transactions: conditions, the kstatus trio, the status patch and condition events."""

from __future__ import annotations

from typing import Any

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import Condition, LokifiStorageStatus
from lokifi_storage.domain.conditions import (
    build_status,
    read_status,
    set_condition,
    status_json,
    status_patch,
    summarize,
)
from lokifi_storage.domain.events import condition_events

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def ok(kind: str, message: str = "fine") -> Condition:
    return Condition(type=kind, status="True", reason=Reason.RECONCILED, message=message)


def bad(kind: str, reason: str, message: str = "broken") -> Condition:
    return Condition(type=kind, status="False", reason=reason, message=message)


NONE = LokifiStorageStatus()


def blocks(**values: Any) -> LokifiStorageStatus:
    return LokifiStorageStatus.model_validate(values)


def stored(status: LokifiStorageStatus) -> LokifiStorageStatus:
    """`status` as the next reconcile reads it back: sent as JSON, read into the model."""
    return read_status(status_json(status))


def wire(status: LokifiStorageStatus) -> dict[str, Any]:
    return status_json(status)


def by_type(status: LokifiStorageStatus) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in wire(status)["conditions"]}


def test_last_transition_time_is_kept_when_only_the_message_changes() -> None:
    before = set_condition([], ok(types.REDIS_READY, "6 nodes"), 1, T0)
    after = set_condition([before], ok(types.REDIS_READY, "6 nodes, 1 setting applied"), 2, T1)
    assert after.lastTransitionTime == T0
    assert after.observedGeneration == 2
    assert after.message == "6 nodes, 1 setting applied"


def test_last_transition_time_moves_when_the_status_flips() -> None:
    before = set_condition([], ok(types.REDIS_READY), 1, T0)
    after = set_condition([before], bad(types.REDIS_READY, Reason.NODE_UNREACHABLE), 1, T1)
    assert after.lastTransitionTime == T1


def test_all_parts_true_make_ready_true_and_neither_reconciling_nor_stalled() -> None:
    ready, reconciling, stalled = summarize([ok(types.POSTGRES_READY), ok(types.REDIS_READY)])
    assert (ready.status, ready.reason) == ("True", Reason.RECONCILED)
    assert reconciling.status == "False"
    assert stalled.status == "False"


def test_one_failing_part_gives_ready_false_with_that_parts_reason() -> None:
    ready, reconciling, stalled = summarize(
        [
            ok(types.POSTGRES_READY),
            bad(types.REDIS_READY, Reason.NODE_UNREACHABLE, "node :7001 down"),
        ]
    )
    assert (ready.status, ready.reason) == ("False", Reason.NODE_UNREACHABLE)
    assert "RedisReady" in ready.message
    assert "node :7001 down" in ready.message
    assert (reconciling.status, reconciling.reason) == ("True", Reason.NODE_UNREACHABLE)
    assert stalled.status == "False"


def test_two_failing_parts_give_part_failed_naming_both() -> None:
    ready, _, _ = summarize(
        [
            bad(types.REDIS_READY, Reason.NODE_UNREACHABLE),
            bad(types.BACKUPS_READY, Reason.BACKUP_STALE),
        ]
    )
    assert ready.reason == Reason.PART_FAILED
    assert "RedisReady" in ready.message
    assert "BackupsReady" in ready.message


def test_missing_secret_stalls_rather_than_reconciles() -> None:
    _, reconciling, stalled = summarize(
        [bad(types.POSTGRES_READY, Reason.SECRET_NOT_FOUND, "Secret 'lokifi-db' not found")]
    )
    assert (stalled.status, stalled.reason) == ("True", Reason.SECRET_NOT_FOUND)
    assert "lokifi-db" in stalled.message
    assert reconciling.status == "False"


def test_capacity_alert_does_not_make_the_resource_unready() -> None:
    ready, _, _ = summarize(
        [ok(types.POSTGRES_READY), bad(types.CAPACITY_OK, Reason.CAPACITY_THRESHOLD_EXCEEDED)]
    )
    assert ready.status == "True"


def test_invalid_spec_is_stalled_whatever_the_parts_say() -> None:
    ready, reconciling, stalled = summarize([ok(types.POSTGRES_READY)], invalid_spec="spec.x: bad")
    assert (ready.status, ready.reason) == ("False", Reason.INVALID_SPEC)
    assert (stalled.status, stalled.message) == ("True", "spec.x: bad")
    assert reconciling.status == "False"


def test_a_second_identical_reconcile_produces_an_empty_status_patch() -> None:
    parts = [ok(types.POSTGRES_READY), ok(types.PARTITIONS_READY)]
    reported = blocks(partitions=[{"table": "ai_messages", "count": 4}])
    first = build_status(NONE, 3, parts, reported, [], T0)
    second = build_status(stored(first), 3, parts, reported, [], T1)
    assert status_patch(wire(first), wire(second)) == {}


def test_conditions_are_stamped_with_generation_and_ordered_summary_first() -> None:
    status = wire(
        build_status(NONE, 7, [ok(types.REDIS_READY), ok(types.POSTGRES_READY)], NONE, [], T0)
    )
    kinds = [c["type"] for c in status["conditions"]]
    assert kinds == ["Ready", "Reconciling", "Stalled", "PostgresReady", "RedisReady"]
    assert {c["observedGeneration"] for c in status["conditions"]} == {7}
    assert status["observedGeneration"] == 7


def test_a_part_removed_from_the_spec_loses_its_condition_and_its_status_block() -> None:
    first = build_status(
        NONE,
        1,
        [ok(types.POSTGRES_READY), ok(types.REDIS_READY)],
        blocks(redis={"clusterState": "ok"}),
        [],
        T0,
    )
    second = build_status(stored(first), 2, [ok(types.POSTGRES_READY)], NONE, ["redis"], T1)
    patch = status_patch(wire(first), wire(second))
    assert patch["redis"] is None
    assert "RedisReady" not in by_type(second)


def test_a_failed_part_keeps_its_last_observed_status_block() -> None:
    first = build_status(
        NONE, 1, [ok(types.PARTITIONS_READY)], blocks(partitions=[{"table": "t"}]), [], T0
    )
    second = build_status(
        stored(first), 1, [bad(types.PARTITIONS_READY, Reason.CONNECTION_FAILED)], NONE, [], T1
    )
    assert wire(second)["partitions"] == wire(first)["partitions"]
    assert [p.table for p in second.partitions] == ["t"]


def test_invalid_spec_keeps_part_conditions_as_last_observed() -> None:
    first = build_status(NONE, 1, [ok(types.POSTGRES_READY)], NONE, [], T0)
    second = build_status(stored(first), 2, [], NONE, [], T1, invalid_spec="bad cron")
    conds = by_type(second)
    assert conds["PostgresReady"]["observedGeneration"] == 1
    assert conds["Stalled"]["status"] == "True"
    assert wire(second)["observedGeneration"] == 2


def test_status_patch_never_touches_keys_the_operator_does_not_know() -> None:
    assert status_patch({"kopf": {"progress": {}}}, {"observedGeneration": 1}) == {
        "observedGeneration": 1
    }


def test_a_new_failure_posts_a_warning_and_a_persisting_one_posts_nothing() -> None:
    healthy = build_status(NONE, 1, [ok(types.REDIS_READY)], NONE, [], T0)
    broken = build_status(
        stored(healthy), 1, [bad(types.REDIS_READY, Reason.NODE_UNREACHABLE, "down")], NONE, [], T1
    )
    events = condition_events(healthy.conditions, broken.conditions)
    assert [(e.type, e.reason) for e in events] == [("Warning", Reason.NODE_UNREACHABLE)]
    assert condition_events(broken.conditions, broken.conditions) == []


def test_recovery_posts_a_normal_event() -> None:
    broken = build_status(NONE, 1, [bad(types.REDIS_READY, Reason.NODE_UNREACHABLE)], NONE, [], T0)
    healthy = build_status(stored(broken), 1, [ok(types.REDIS_READY)], NONE, [], T1)
    events = condition_events(broken.conditions, healthy.conditions)
    assert [(e.type, e.reason) for e in events] == [("Normal", Reason.RECONCILED)]
    assert events[0].message.startswith("RedisReady recovered")


def test_printer_column_summary_is_derived_from_the_part_blocks() -> None:
    reported = blocks(
        partitions=[{"table": "a", "count": 4}, {"table": "b", "count": 3}],
        replicas=[{"name": "r1", "healthy": True, "lagSeconds": 0.4}],
    )
    status = wire(build_status(NONE, 1, [ok(types.PARTITIONS_READY)], reported, [], T0))
    assert status["summary"] == {"partitions": 7, "maxReplicaLagSeconds": 0.4}
    assert "summary" not in wire(build_status(NONE, 1, [], NONE, [], T0))
