"""The "is the CRD up to date?" warning fires only when the API server really dropped a field.

The reconciler runs in this process against the real API server and the committed CRD. A part
standing in for a newer operator reports a status field the CRD does not know: the API server
prunes it, the reconciler stops re-sending and logs once which field was dropped. A part
reporting what the CRD knows (a table without partitions, whose oldest/newest are unset)
converges after one patch and never warns.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
import yaml
from e2e_operator import get_json, kubectl

from lokifi_storage.api.conditions import PARTITIONS_READY
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import LokifiStorageStatus, PartitionStatus, ready
from lokifi_storage.clients.kube import KubeClient
from lokifi_storage.reconcile.parts import PartContext
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.resource import ResourceReconciler
from stackfixtures import REPO, StackEnv

WARNING = "drops status fields"


class FuturePartitionStatus(PartitionStatus):
    """status.partitions[] as a newer operator version writes it: one field more."""

    partitionsOfTheFuture: int  # noqa: N815 - status fields are camelCase


@dataclass(frozen=True)
class _Partitions:
    """The partitions part, reporting `row` whatever the database holds."""

    row: PartitionStatus
    name: str = "partitions"
    conditions: tuple[str, ...] = (PARTITIONS_READY,)
    status_keys: tuple[str, ...] = ("partitions",)

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return True

    def run(self, ctx: PartContext) -> list[PartReport]:
        status = LokifiStorageStatus(partitions=[self.row])
        return [PartReport(condition=ready(PARTITIONS_READY, "ok"), status=status)]

    def cleanup(self, ctx: PartContext) -> list[str]:
        return []

    def release(self, ctx: PartContext) -> list[str]:
        return []


def _reconcile_three_times(
    stack: StackEnv, namespace: str, row: PartitionStatus, caplog: pytest.LogCaptureFixture
) -> list[bool]:
    resource = yaml.safe_load((REPO / "examples" / "lokifistorage-minimal.yaml").read_text())
    resource["metadata"]["namespace"] = namespace
    kubectl(stack, "apply", "-f", "-", input_text=json.dumps(resource))
    assert stack.kubeconfig is not None
    kube = KubeClient.from_environment(stack.kubeconfig)
    try:
        reconciler = ResourceReconciler(kube, parts=[_Partitions(row)])
        name = resource["metadata"]["name"]
        with caplog.at_level(logging.WARNING, logger="lokifi_storage.reconcile.publish"):
            return [reconciler.reconcile(namespace, name).status_patched for _ in range(3)]
    finally:
        kube.close()


def test_a_field_the_crd_does_not_know_is_named_once_and_not_resent(
    kube_stack: StackEnv, crd: str, k8s_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    row = FuturePartitionStatus(table="ai_messages", count=2, partitionsOfTheFuture=7)
    patched = _reconcile_three_times(kube_stack, k8s_namespace, row, caplog)
    assert patched == [True, False, False]  # sent once; stored without it, so not re-sent
    warnings = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "partitions[0].partitionsOfTheFuture" in warnings[0]


def test_a_status_the_crd_knows_converges_without_the_warning(
    kube_stack: StackEnv, crd: str, k8s_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    row = PartitionStatus(table="ai_threads")  # oldest/newest None, as the issue saw
    assert row.oldest is None
    patched = _reconcile_three_times(kube_stack, k8s_namespace, row, caplog)
    assert patched == [True, False, False]
    assert not [r for r in caplog.records if WARNING in r.getMessage()]
    stored = get_json(kube_stack, k8s_namespace, "lks", "lokifi-minimal") or {}
    assert stored["status"]["partitions"] == [
        PartitionStatus(table="ai_threads").model_dump(exclude_none=True)
    ]
