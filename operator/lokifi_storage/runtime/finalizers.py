"""The finalizer of `deletionPolicy: Delete` in sharded mode, served by the resource's owner.

In the default mode Kopf adds, serves and removes it; in sharded mode Kopf's handlers are off
(runtime/sharding.py says why), so the replica holding the resource's shard does it after its
reconciles. It is apart from sharding.py because it is about one resource's deletion, not about
who holds which shard.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.kube import KubeClient
from lokifi_storage.handlers.operator import FINALIZER
from lokifi_storage.reconcile.deletion import being_deleted
from lokifi_storage.reconcile.resource import LOKIFI_STORAGES, ResourceReconciler
from lokifi_storage.reconcile.results import ReconcileResult
from lokifi_storage.runtime.controller import Controller, Entry

__all__ = ["Finalizers"]

log = logging.getLogger(__name__)


class Finalizers:
    """deletionPolicy Delete in sharded mode: the owner of the resource adds the finalizer after
    a reconcile, cleans up when the resource is deleted, then removes it (Kopf does this in the
    default mode). Writes happen only when the finalizer is not as the policy wants it."""

    def __init__(
        self, kube: KubeClient, reconciler: ResourceReconciler, controller: Controller
    ) -> None:
        self.kube = kube
        self.reconciler = reconciler
        self.controller = controller
        controller.on_finished = self.after_reconcile
        controller.finalize = self.finalize
        controller.needs_cleanup = lambda entry: FINALIZER in entry.finalizers

    def after_reconcile(self, entry: Entry, result: ReconcileResult | None) -> None:
        if result is None or result.gone or entry.deleting:
            return
        if (entry.deletion_policy == "Delete") == (FINALIZER in entry.finalizers):
            return
        try:
            self._align(entry)
        except ClientError as error:  # the next reconcile tries again
            log.warning("finalizer of %s/%s: %s", entry.namespace, entry.name, error.message)

    def _align(self, entry: Entry) -> None:
        obj = self.kube.get(LOKIFI_STORAGES, entry.namespace, entry.name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        finalizers = list(obj["metadata"].get("finalizers") or [])
        want = (obj.get("spec") or {}).get("deletionPolicy") == "Delete"
        if want == (FINALIZER in finalizers):
            return
        finalizers = [*finalizers, FINALIZER] if want else [f for f in finalizers if f != FINALIZER]
        self._patch(obj, finalizers)

    def _patch(self, obj: Mapping[str, Any], finalizers: list[str]) -> None:
        meta = obj["metadata"]
        self.kube.patch_merge(
            LOKIFI_STORAGES,
            meta["namespace"],
            meta["name"],
            {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}},
        )

    def finalize(self, entry: Entry) -> None:
        """The resource is being deleted: clean up under deletionPolicy Delete, then let it go.
        Only that resource (a new one of the same name is left alone: reconcile/deletion.py
        `being_deleted`), and only while this replica holds its shard: the clean-up and the
        finalizer's removal write under the shard's fence. Raises the clients' error tree (the
        controller retries with backoff)."""
        obj = self.kube.get(LOKIFI_STORAGES, entry.namespace, entry.name)
        if not being_deleted(obj, entry.uid):
            return
        if FINALIZER not in (obj["metadata"].get("finalizers") or []):
            return
        fence = self.controller.fence_for(entry.namespace, entry.name)
        fence = fence or self.reconciler.config.fence
        if (obj.get("spec") or {}).get("deletionPolicy") == "Delete":
            actions = self.reconciler.clean_up(entry.namespace, entry.name, entry.uid, fence)
            log.info(
                "cleaned up %s/%s: %s",
                entry.namespace,
                entry.name,
                "; ".join(actions) or "nothing to do",
            )
            obj = self.kube.get(LOKIFI_STORAGES, entry.namespace, entry.name)
            if not being_deleted(obj, entry.uid):
                return
        finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != FINALIZER]
        with self.kube.writes_under(fence.check):
            self._patch(obj, finalizers)
