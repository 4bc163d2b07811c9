"""Conditions through their constructors; status read, merged and sent as the model.

The constructors are the one place True/False is spelt next to a reason, so a part cannot
report Ready-but-False by a slip; the guard below keeps inline `Condition(...)` from coming back.
"""

from __future__ import annotations

import ast
from pathlib import Path

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import (
    Condition,
    LokifiStorageStatus,
    PartitionStatus,
    RedisStatus,
    cleared,
    failed,
    judged,
    raised,
    ready,
)
from lokifi_storage.domain.conditions import (
    read_status,
    reported_blocks,
    status_json,
    with_blocks,
)

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "lokifi_storage"


def test_ready_is_true_and_reconciled_unless_told_otherwise() -> None:
    assert ready(types.REDIS_READY, "6 nodes") == Condition(
        type=types.REDIS_READY, status="True", reason=Reason.RECONCILED, message="6 nodes"
    )
    pending = ready(types.PARTITIONS_READY, "2 to compress", Reason.MAINTENANCE_PENDING)
    assert (pending.status, pending.reason) == ("True", Reason.MAINTENANCE_PENDING)


def test_failed_is_false_with_its_reason() -> None:
    assert failed(types.REDIS_READY, Reason.NODE_UNREACHABLE, "down") == Condition(
        type=types.REDIS_READY, status="False", reason=Reason.NODE_UNREACHABLE, message="down"
    )
    assert failed(types.READY, Reason.INVALID_SPEC).message == ""


def test_judged_follows_the_verdict_and_keeps_its_reason_either_way() -> None:
    within = judged(types.CAPACITY_OK, True, Reason.WITHIN_CAPACITY, "40% used")
    over = judged(types.CAPACITY_OK, False, Reason.CAPACITY_THRESHOLD_EXCEEDED, "90% used")
    assert (within.status, within.reason) == ("True", Reason.WITHIN_CAPACITY)
    assert (over.status, over.reason, over.message) == (
        "False",
        Reason.CAPACITY_THRESHOLD_EXCEEDED,
        "90% used",
    )


def test_raised_and_cleared_are_the_two_states_of_reconciling_and_stalled() -> None:
    stalled = raised(types.STALLED, Reason.SECRET_NOT_FOUND, "needs attention: x")
    assert (stalled.status, stalled.reason) == ("True", Reason.SECRET_NOT_FOUND)
    assert cleared(types.RECONCILING) == Condition(
        type=types.RECONCILING, status="False", reason=Reason.RECONCILED, message=""
    )
    assert cleared(types.RECONCILING, Reason.INVALID_SPEC).reason == Reason.INVALID_SPEC


def test_no_module_builds_a_condition_inline() -> None:
    inline = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "api" / "status.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Condition"
            ):
                inline.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not inline, f"use the constructors of api/status.py: {inline}"


def test_read_status_leaves_out_unknown_keys_and_unreadable_blocks() -> None:
    status = read_status(
        {
            "kopf": {"progress": {}},
            "redis": {"masters": "three"},
            "partitions": [{"table": "t", "count": 2}],
        }
    )
    assert reported_blocks(status) == {"partitions": [PartitionStatus(table="t", count=2)]}
    assert "redis" not in status.model_fields_set


def test_what_was_stored_reads_back_and_is_sent_unchanged() -> None:
    sent = {
        "observedGeneration": 3,
        "partitions": [],
        "redis": {"masters": 3, "usedMemoryBytes": {"10.0.0.1:7000": 12}},
        "plan": {
            "observedGeneration": 3,
            "summary": "Plan: 1 to change",
            "changes": 1,
            "items": [{"part": "redis", "target": "n", "kind": "update", "detail": "set"}],
        },
    }
    assert status_json(read_status(sent)) == sent


def test_with_blocks_adds_and_replaces_blocks_and_skips_none() -> None:
    base = LokifiStorageStatus(partitions=[PartitionStatus(table="t")])
    merged = with_blocks(base, redis=RedisStatus(masters=3), storage=None)
    assert set(reported_blocks(merged)) == {"partitions", "redis"}
    replaced = with_blocks(merged, partitions=[])
    assert reported_blocks(replaced)["partitions"] == []
