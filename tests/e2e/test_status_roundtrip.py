"""Every status shape the operator writes is stored by the real API server exactly as sent.

The CRD (the committed crds/lokifistorage.yaml) declares no field nullable, so the API server
drops a null field, and a status that sends one never reads back equal to itself: the operator
would patch it on every pass and blame the CRD. Here each shape is built with the operator's own
code (build_status over the part reports, the partitions report of real plans, every status
model both as sparse as it can be and with every field set), sent with the merge patch the
operator would send, read back with kubectl, and compared with what was sent.
"""

from __future__ import annotations

import json
import types as pytypes
import typing
from typing import Any, Literal

import yaml
from e2e_operator import get_json, kubectl
from pydantic import BaseModel

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import (
    BackupStatus,
    Condition,
    ConnectionSecretStatus,
    LokifiStorageStatus,
    ObjectStorageStatus,
    RedisStatus,
    ReplicaStatus,
    StorageStatus,
)
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.domain.conditions import (
    BLOCK_KEYS,
    build_status,
    read_status,
    reported_blocks,
    status_json,
    status_patch,
)
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.index_plan import Problem
from lokifi_storage.domain.partitions.plan import TablePlan, TableSummary
from lokifi_storage.reconcile.partitions import PartitionOutcome
from stackfixtures import REPO, StackEnv

NOW = "2026-12-01T10:00:00Z"


def _sample(annotation: Any, full: bool) -> Any:
    """A value of `annotation`: the smallest one, or one with every optional part set."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, pytypes.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _sample(inner[0], full) if full else None
    if origin is Literal:
        return args[0]
    if origin is list:
        return [_sample(args[0], full)] if full else []
    if origin is dict:
        return {"10.0.0.1:7000": _sample(args[1], full)} if full else {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_sample(annotation, full)
    return {str: "2026-11-30T02:00:00Z", int: 3, float: 1.5, bool: True}[annotation]


def model_sample(model: type[BaseModel], full: bool) -> dict[str, Any]:
    """The model dumped as the operator dumps it, from sparse or full field values."""
    values = {
        name: _sample(info.annotation, full)
        for name, info in model.model_fields.items()
        if full or info.is_required()
    }
    return model.model_validate(values).model_dump(mode="json")


def _partitions_report() -> dict[str, Any]:
    """status.partitions of real plans: a table without partitions, one with, errors."""
    outcome = PartitionOutcome(
        plans={
            "ai_threads": TablePlan(
                table=QName("public", "ai_threads"), summary=TableSummary(table="ai_threads")
            ),
            "ai_messages": TablePlan(
                table=QName("public", "ai_messages"),
                problems=(Problem(Reason.INDEX_MISMATCH, "idx differs"),),
                summary=TableSummary(
                    table="ai_messages",
                    count=4,
                    oldest="2026-11-01",
                    newest="2027-02-01",
                    in_default=7,
                    archived=2,
                    pending_compress=1,
                    pending_export=1,
                ),
            ),
        },
        failures={"ai_messages": ClientError("lock", reason=Reason.LOCK_TIMEOUT)},
    )
    report = outcome.report()
    return {"condition": report.condition, "status": report.status}


def _shapes() -> list[tuple[str, list[Condition], LokifiStorageStatus]]:
    """(name, part conditions, status blocks) for each shape."""
    partitions = _partitions_report()
    every_part = [
        Condition(type=kind, status=status, reason=reason, message=f"{kind} {status}")
        for kind, status, reason in zip(
            types.PART_CONDITIONS,
            ["True", "False", "Unknown", "False", "True", "False", "False"],
            [
                Reason.RECONCILED,
                Reason.PARTITION_KEY_MISMATCH,
                Reason.PROGRESSING,
                Reason.NODE_UNREACHABLE,
                Reason.RECONCILED,
                Reason.BACKUP_STALE,
                Reason.CAPACITY_THRESHOLD_EXCEEDED,
            ],
            strict=True,
        )
    ]
    blocks: dict[str, type[BaseModel]] = {
        "storage": StorageStatus,
        "redis": RedisStatus,
        "objectStorage": ObjectStorageStatus,
        "connectionSecret": ConnectionSecretStatus,
    }
    lists: dict[str, type[BaseModel]] = {"replicas": ReplicaStatus, "backups": BackupStatus}
    shapes: list[tuple[str, list[Condition], LokifiStorageStatus]] = [
        ("partitions of real plans", [partitions["condition"]], partitions["status"]),
        ("every part condition", every_part, LokifiStorageStatus()),
    ]
    for full in (False, True):
        which = "full" if full else "sparse"
        sampled = {key: model_sample(model, full) for key, model in blocks.items()}
        sampled |= {key: [model_sample(model, full)] for key, model in lists.items()}
        shapes.append(
            (f"every block, {which}", every_part, LokifiStorageStatus.model_validate(sampled))
        )
    shapes.append(
        ("all parts ready, no blocks", [every_part[0]], LokifiStorageStatus(partitions=[]))
    )
    return shapes


def test_every_status_shape_reads_back_exactly_as_sent(
    kube_stack: StackEnv, crd: str, k8s_namespace: str
) -> None:
    resource = yaml.safe_load((REPO / "examples" / "lokifistorage-minimal.yaml").read_text())
    resource["metadata"]["namespace"] = k8s_namespace
    kubectl(kube_stack, "apply", "-f", "-", input_text=json.dumps(resource))
    name = resource["metadata"]["name"]

    current: dict[str, Any] = {}
    checked = []
    for shape, parts, blocks in _shapes():
        dropped = [key for key in BLOCK_KEYS if key not in reported_blocks(blocks)]
        desired = status_json(build_status(read_status(current), 1, parts, blocks, dropped, NOW))
        patch = status_patch(current, desired)
        kubectl(
            kube_stack,
            "-n",
            k8s_namespace,
            "patch",
            "lks",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": patch}),
        )
        stored = (get_json(kube_stack, k8s_namespace, "lks", name) or {}).get("status") or {}
        assert stored == desired, f"{shape}: stored differs from sent"
        assert status_patch(stored, desired) == {}, f"{shape}: would patch again"
        current = stored
        checked.append(shape)
    assert len(checked) == 5
