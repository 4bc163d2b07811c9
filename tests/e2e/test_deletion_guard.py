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
from typing import Any

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


@dataclass
class _Scene:
    """One namespace with the CRD, a client of the API server and the reconciler of this
    process, whose only part is the recorder; the resource under test is NAME."""

    stack: StackEnv
    namespace: str
    kube: KubeClient
    recorder: _Recorder
    reconciler: ResourceReconciler

    def apply(self) -> str:
        """The minimal example with deletionPolicy Delete and the finalizer; returns its uid."""
        resource = yaml.safe_load((REPO / "examples" / "lokifistorage-minimal.yaml").read_text())
        resource["metadata"].update(namespace=self.namespace, finalizers=[FINALIZER])
        resource["spec"]["deletionPolicy"] = "Delete"
        kubectl(self.stack, "apply", "-f", "-", input_text=json.dumps(resource))
        obj = self.get()
        assert obj is not None
        return str(obj["metadata"]["uid"])

    def get(self) -> dict[str, Any] | None:
        return get_json(self.stack, self.namespace, "lks", NAME)

    def delete(self) -> None:
        """Ask for the deletion; the finalizer keeps the resource, with a deletionTimestamp."""
        kubectl(self.stack, "-n", self.namespace, "delete", "lks", NAME, "--wait=false")

    def drop_finalizer(self) -> None:
        """What an admin does to a resource stuck in deletion: it goes away at once."""
        patch = json.dumps({"metadata": {"finalizers": None}})
        kubectl(self.stack, "-n", self.namespace, "patch", "lks", NAME, "--type=merge", "-p", patch)
        wait_for(lambda: self.get() is None, 30, "the resource to go")

    def cleaned_up_events(self) -> list[str]:
        return [
            str(event.get("message"))
            for event in self.kube.list_objects(EVENTS, self.namespace)
            if event.get("reason") == Reason.CLEANED_UP
        ]


@pytest.fixture
def scene(kube_stack: StackEnv, crd: str, k8s_namespace: str) -> Iterator[_Scene]:
    assert kube_stack.kubeconfig is not None
    kube = KubeClient.from_environment(kube_stack.kubeconfig)
    recorder = _Recorder()
    yield _Scene(
        kube_stack, k8s_namespace, kube, recorder, ResourceReconciler(kube, parts=[recorder])
    )
    kube.close()


def test_clean_up_runs_for_the_resource_being_deleted_and_no_other(scene: _Scene) -> None:
    reconciler, namespace = scene.reconciler, scene.namespace
    uid = scene.apply()
    try:
        assert reconciler.clean_up(namespace, NAME, uid) == []  # not being deleted
        scene.delete()
        assert reconciler.clean_up(namespace, NAME, STALE_UID) == []  # another resource
        assert scene.recorder.cleaned == []
        assert scene.cleaned_up_events() == []

        assert reconciler.clean_up(namespace, NAME, uid) == [f"removed what {uid} made"]
        assert scene.recorder.cleaned == [uid]
        assert scene.cleaned_up_events() == [f"removed what {uid} made"]
    finally:
        scene.drop_finalizer()


def test_a_paused_leader_removes_nothing_posts_no_event_and_releases_no_claim(
    scene: _Scene,
) -> None:
    reconciler = scene.reconciler
    uid = scene.apply()
    scene.delete()
    try:
        fence = Fence()
        fence.hold_until(time.monotonic() - 0.1)  # resumed past its renewal deadline
        with pytest.raises(LeadershipLost, match="cleanup of recorder"):
            reconciler.clean_up(scene.namespace, NAME, uid, fence)
        assert scene.recorder.cleaned == []
        assert scene.cleaned_up_events() == []
        obj = scene.get()
        assert obj is not None
        assert obj["metadata"]["finalizers"] == [FINALIZER]
        # Nor does it give up the resource's claims once it is gone.
        with pytest.raises(LeadershipLost, match="release of recorder"):
            reconciler.release(obj, fence)
        assert scene.recorder.released == []
        reconciler.release(obj)
        assert scene.recorder.released == [uid]
    finally:
        scene.drop_finalizer()


def test_a_late_finalize_leaves_a_new_resource_of_the_same_name_alone(scene: _Scene) -> None:
    """Sharded mode's finalizer: the old resource's clean-up, retried after its finalizer was
    removed by hand and the manifest applied again, finds the new one under the name."""
    finalizers = Finalizers(scene.kube, scene.reconciler, Controller(scene.reconciler))
    old = scene.apply()
    scene.delete()
    scene.drop_finalizer()
    new = scene.apply()
    assert new != old

    finalizers.finalize(Entry(namespace=scene.namespace, name=NAME, uid=old))
    assert scene.recorder.cleaned == []
    obj = scene.get()
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [FINALIZER]

    scene.delete()  # now the new one goes: cleaned up and let go
    finalizers.finalize(Entry(namespace=scene.namespace, name=NAME, uid=new))
    assert scene.recorder.cleaned == [new]
    wait_for(lambda: scene.get() is None, 30, "it to go")
