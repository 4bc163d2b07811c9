"""The desired status holds no null (the API server drops null fields, so a status with one never
reads back equal); a pruning CRD is recognised by fields missing from what it stored."""

from __future__ import annotations

from typing import Any

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import Condition, LokifiStorageStatus
from lokifi_storage.domain.conditions import build_status, dropped_fields, status_json
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.plan import TablePlan, TableSummary
from lokifi_storage.domain.requeue import Outcome, next_delay
from lokifi_storage.reconcile.partitions import PartitionOutcome

NOW = "2026-12-01T10:00:00Z"


def _nulls(value: Any, path: str = "status") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return []


def test_a_table_without_partitions_is_reported_without_null_oldest_or_newest() -> None:
    plans = {
        "ai_threads": TablePlan(
            table=QName("public", "ai_threads"), summary=TableSummary(table="ai_threads")
        )
    }
    report = PartitionOutcome(plans=plans).report()
    assert status_json(report.status)["partitions"] == [
        {
            "table": "ai_threads",
            "count": 0,
            "inDefault": 0,
            "archived": 0,
            "pendingCompress": 0,
            "pendingExport": 0,
        }
    ]


def test_build_status_drops_nulls_at_any_depth_of_any_block() -> None:
    blocks = LokifiStorageStatus.model_validate(
        {
            "redis": {"clusterState": None, "masters": 3, "usedMemoryBytes": {}},
            "replicas": [{"name": "r1", "healthy": False, "lagSeconds": None, "reason": None}],
            "storage": {"databaseBytes": None, "largest": [], "samples": []},
        }
    )
    part = Condition(type=types.REDIS_READY, status="True", reason=Reason.RECONCILED)
    status = status_json(build_status(LokifiStorageStatus(), None, [part], blocks, [], NOW))
    assert _nulls(status) == []
    assert status["redis"] == {"masters": 3, "usedMemoryBytes": {}}
    assert "observedGeneration" not in status


def test_status_json_keeps_falsy_values_and_sends_only_the_keys_set() -> None:
    status = LokifiStorageStatus.model_validate(
        {"partitions": [], "redis": {"slotsFail": 0, "clusterState": None}}
    )
    assert status_json(status) == {
        "partitions": [],
        "redis": {"slotsFail": 0, "usedMemoryBytes": {}},
    }
    assert status_json(LokifiStorageStatus()) == {}


def test_dropped_fields_names_what_the_server_did_not_store_not_what_it_changed() -> None:
    sent = {"partitions": [{"table": "t", "pendingExport": 1}], "redis": {"masters": 3}}
    stored = {"partitions": [{"table": "t"}], "redis": {"masters": 4}}
    assert dropped_fields(sent, stored) == ["partitions[0].pendingExport"]
    assert dropped_fields(sent, sent) == []


def test_a_stalled_resource_is_looked_at_on_the_resync_period_not_with_backoff() -> None:
    assert next_delay(Outcome.STALLED, 0, 300.0) == 300.0
    assert next_delay(Outcome.STALLED, 9, 300.0) == 300.0
    assert next_delay(Outcome.NOT_READY, 0, 300.0) == 2.0
