"""deletionPolicy Delete removes things for the resource being deleted, and only while the
operator may write.

Against the real API server, with the reconciler in this process and a part that records for
which resource its clean-up ran. Deletion finds the resource by name, so it checks that the
object under that name is the one it was asked about (same uid) and is being deleted: after a
finalizer is removed by hand and the manifest applied again, the name is a new resource whose
things are not the deleted one's to remove, and whose finalizer is not to be taken. A paused
leader past its renewal deadline removes nothing, posts no Event and releases no claim.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import yaml
from e2e_operator import get_json, kubectl, wait_for

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.clients.kube import EVENTS, KubeClient
from lokifi_storage.handlers.operator import FINALIZER
from lokifi_storage.reconcile.fence import Fence, LeadershipLost
from lokifi_storage.reconcile.parts import PartContext
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.resource import ResourceReconciler
from lokifi_storage.runtime.controller import Controller
from lokifi_storage.runtime.finalizers import Finalizers
from lokifi_storage.runtime.schedule import Entry
from stackfixtures import REPO, StackEnv

NAME = "lokifi-minimal"
STALE_UID = "00000000-0000-0000-0000-00000000dead"


@dataclass(frozen=True)
class _Recorder:
    """A part whose clean-up and release record the uid of the resource they ran for."""

    cleaned: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    name: str = "recorder"
    conditions: tuple[str, ...] = ()
    status_keys: tuple[str, ...] = ()

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return True

    def run(self, ctx: PartContext) -> list[PartReport]:
        return []

    def cleanup(self, ctx: PartContext) -> list[str]:
        self.cleaned.append(ctx.uid)
        return [f"removed what {ctx.uid} made"]

    def release(self, ctx: PartContext) -> list[str]:
        self.released.append(ctx.uid)
        return []


@pytest.fixture
def kube(kube_stack: StackEnv) -> Iterator[KubeClient]:
    assert kube_stack.kubeconfig is not None
    made = KubeClient.from_environment(kube_stack.kubeconfig)
    yield made
    made.close()


def _apply(stack: StackEnv, namespace: str) -> str:
    """The minimal example with deletionPolicy Delete and the finalizer; returns its uid."""
    resource = yaml.safe_load((REPO / "examples" / "lokifistorage-minimal.yaml").read_text())
    resource["metadata"].update(namespace=namespace, finalizers=[FINALIZER])
    resource["spec"]["deletionPolicy"] = "Delete"
    kubectl(stack, "apply", "-f", "-", input_text=json.dumps(resource))
    obj = get_json(stack, namespace, "lks", NAME)
    assert obj is not None
    return str(obj["metadata"]["uid"])


def _delete(stack: StackEnv, namespace: str) -> None:
    """Ask for the deletion; the finalizer keeps the resource, now with a deletionTimestamp."""
    kubectl(stack, "-n", namespace, "delete", "lks", NAME, "--wait=false")


def _drop_finalizer(stack: StackEnv, namespace: str) -> None:
    """What an admin does to a resource stuck in deletion: it goes away at once."""
    patch = json.dumps({"metadata": {"finalizers": None}})
    kubectl(stack, "-n", namespace, "patch", "lks", NAME, "--type=merge", "-p", patch)
    wait_for(lambda: get_json(stack, namespace, "lks", NAME) is None, 30, "the resource to go")


def _cleaned_up_events(kube: KubeClient, namespace: str) -> list[str]:
    return [
        str(event.get("message"))
        for event in kube.list_objects(EVENTS, namespace)
        if event.get("reason") == Reason.CLEANED_UP
    ]


def test_clean_up_runs_for_the_resource_being_deleted_and_no_other(
    kube_stack: StackEnv, crd: str, k8s_namespace: str, kube: KubeClient
) -> None:
    recorder = _Recorder()
    reconciler = ResourceReconciler(kube, parts=[recorder])
    uid = _apply(kube_stack, k8s_namespace)
    try:
        assert reconciler.clean_up(k8s_namespace, NAME, uid) == []  # not being deleted
        _delete(kube_stack, k8s_namespace)
        assert reconciler.clean_up(k8s_namespace, NAME, STALE_UID) == []  # another resource
        assert recorder.cleaned == []
        assert _cleaned_up_events(kube, k8s_namespace) == []

        assert reconciler.clean_up(k8s_namespace, NAME, uid) == [f"removed what {uid} made"]
        assert recorder.cleaned == [uid]
        assert _cleaned_up_events(kube, k8s_namespace) == [f"removed what {uid} made"]
    finally:
        _drop_finalizer(kube_stack, k8s_namespace)


def test_a_paused_leader_removes_nothing_posts_no_event_and_releases_no_claim(
    kube_stack: StackEnv, crd: str, k8s_namespace: str, kube: KubeClient
) -> None:
    recorder = _Recorder()
    reconciler = ResourceReconciler(kube, parts=[recorder])
    uid = _apply(kube_stack, k8s_namespace)
    _delete(kube_stack, k8s_namespace)
    try:
        fence = Fence()
        fence.hold_until(time.monotonic() - 0.1)  # resumed past its renewal deadline
        with pytest.raises(LeadershipLost, match="cleanup of recorder"):
            reconciler.clean_up(k8s_namespace, NAME, uid, fence)
        assert recorder.cleaned == []
        assert _cleaned_up_events(kube, k8s_namespace) == []
        obj = get_json(kube_stack, k8s_namespace, "lks", NAME)
        assert obj is not None
        assert obj["metadata"]["finalizers"] == [FINALIZER]
        # Nor does it give up the resource's claims once it is gone.
        with pytest.raises(LeadershipLost, match="release of recorder"):
            reconciler.release(obj, fence)
        assert recorder.released == []
        reconciler.release(obj)
        assert recorder.released == [uid]
    finally:
        _drop_finalizer(kube_stack, k8s_namespace)


def test_a_late_finalize_leaves_a_new_resource_of_the_same_name_alone(
    kube_stack: StackEnv, crd: str, k8s_namespace: str, kube: KubeClient
) -> None:
    """Sharded mode's finalizer: the old resource's clean-up, retried after its finalizer was
    removed by hand and the manifest applied again, finds the new one under the name."""
    recorder = _Recorder()
    reconciler = ResourceReconciler(kube, parts=[recorder])
    finalizers = Finalizers(kube, reconciler, Controller(reconciler))
    old = _apply(kube_stack, k8s_namespace)
    _delete(kube_stack, k8s_namespace)
    _drop_finalizer(kube_stack, k8s_namespace)
    new = _apply(kube_stack, k8s_namespace)
    assert new != old

    finalizers.finalize(Entry(namespace=k8s_namespace, name=NAME, uid=old))
    assert recorder.cleaned == []
    obj = get_json(kube_stack, k8s_namespace, "lks", NAME)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [FINALIZER]

    _delete(kube_stack, k8s_namespace)  # now the new one goes: cleaned up and let go
    finalizers.finalize(Entry(namespace=k8s_namespace, name=NAME, uid=new))
    assert recorder.cleaned == [new]
    wait_for(lambda: get_json(kube_stack, k8s_namespace, "lks", NAME) is None, 30, "it to go")
