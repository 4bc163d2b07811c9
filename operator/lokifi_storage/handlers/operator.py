"""Every @kopf decorator of the operator, and the Kopf settings; the handlers stay thin.

Kopf settings, and why:
- Events: `posting.enabled = False`. Kopf would otherwise post its own messages (and, with
  `posting.loggers`, every handler log line) as Events; the reconciler posts its own Events
  with reasons from api/conditions.py, so nothing else can reach `kubectl describe`.
- Handler results: every handler returns None. Kopf stores a handler's return value in
  `.status.<handler id>`; with None nothing is stored and `.status` belongs to the reconciler.
- Bookkeeping: the last-handled configuration (the spec and labels Kopf compares each watch
  event with, to tell a change from a status patch) is kept in this process's memory
  (`RememberedDiffBase`), not written to the resource: persisting it cost one PATCH of the
  resource after every handled change, a quarter of a new resource's writes, and what it
  would spare, telling a resume from a create after a restart, matters nothing here, where
  both run the same reconcile. Progress of a retried handler stays in annotations under
  `storage.lokifi.ai/` (never in `.status`), without Kopf's `kopf-managed` marker, which only
  tells other Kopf operators whose annotations these are and would be written once per
  resource (`UnmarkedProgress`). So Kopf never writes status, and a change handled at the
  first try writes nothing to the resource itself.
- Finalizer: only a resource with `deletionPolicy: Delete` gets `storage.lokifi.ai/cleanup` (the
  delete handler is filtered on the policy). No timers or daemons: Kopf would put a finalizer
  on every resource; the resync is the controller's own loop (runtime/controller.py).
- Peering: Kopf's peering is off (standalone); two operator processes are kept apart by a Lease
  before Kopf starts at all (runtime/leadership.py), or split the resources by shard Leases
  (runtime/sharding.py: then Kopf only watches, and its finalizer setting names one never used,
  so that it leaves the shard owner's finalizer alone).
- Scanning: off when every namespace is named exactly (or all are served): the operator serves
  one known resource, so Kopf has no need to watch CustomResourceDefinitions or Namespaces, and
  the chart's ServiceAccount is granted neither (least privilege; templates/rbac.yaml). A glob
  (`--namespace 'team-*'`) needs Kopf to watch Namespaces to resolve it, so it keeps scanning
  on, and then the operator needs list/watch on namespaces.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import kopf

from lokifi_storage.api.coordinates import GROUP, PLURAL, VERSION

__all__ = [
    "ANNOTATION_PREFIX",
    "FINALIZER",
    "RememberedDiffBase",
    "UnmarkedProgress",
    "build_registry",
    "operator_settings",
]

ANNOTATION_PREFIX: Final = GROUP
FINALIZER: Final = "storage.lokifi.ai/cleanup"

log = logging.getLogger(__name__)


#: Kopf's finalizer in sharded mode: a name never put on a resource, so that Kopf, which has no
#: handler needing one there, neither adds nor removes FINALIZER (the shard owner does).
KOPF_FINALIZER_SHARDED: Final = "storage.lokifi.ai/kopf-unused"


class RememberedDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf's last-handled essence of each resource, by uid, in memory only (module docstring).

    A resource this process has not handled yet has none, so Kopf runs the create handler for
    it, which is the reconcile its resume handler would run. Annotations an older version
    stored stay on the resource, unread."""

    def __init__(self) -> None:
        super().__init__(prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
        self._essences: dict[str, Any] = {}
        self._lock = threading.Lock()

    def fetch(self, *, body: kopf.Body) -> Any:
        with self._lock:
            return self._essences.get(body.metadata.uid or "")

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        with self._lock:
            self._essences[body.metadata.uid or ""] = essence

    def forget(self, uid: str) -> None:
        """The resource is gone: drop its essence."""
        with self._lock:
            self._essences.pop(uid, None)


class UnmarkedProgress(kopf.AnnotationsProgressStorage):
    """Kopf's progress annotations without the `kopf-managed` marker (module docstring)."""

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        return None


def operator_settings(
    workers: int = 8, namespaces: Sequence[str] = (), *, sharded: bool = False
) -> kopf.OperatorSettings:
    """Kopf's settings for this operator (see the module docstring for each choice)."""
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.posting.loggers = False
    settings.persistence.progress_storage = UnmarkedProgress(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = RememberedDiffBase()
    settings.persistence.finalizer = KOPF_FINALIZER_SHARDED if sharded else FINALIZER
    settings.peering.standalone = True
    settings.peering.mandatory = False
    settings.scanning.disabled = not any(_is_pattern(ns) for ns in namespaces)
    settings.execution.max_workers = workers
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    return settings


def _is_pattern(namespace: str) -> bool:
    """Kopf reads `*`, `?`, `[...]` and a leading `!` in a namespace as a glob to resolve."""
    return namespace.startswith("!") or any(c in namespace for c in "*?[,")


def _delete_policy(spec: Mapping[str, Any], **_: Any) -> bool:
    return spec.get("deletionPolicy") == "Delete"


def build_registry(*, sharded: bool = False) -> kopf.OperatorRegistry:
    """A fresh registry with the operator's handlers; they reach the controller via `memo`.

    `sharded`: only the watch (`observe`); see runtime/sharding.py."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """Credentials as the `kubernetes` client finds them: service account or kubeconfig."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def observe(event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Keep the controller's list of resources current (on the loop: no executor thread
        is taken per watch event); a deleted resource's last-handled essence is dropped."""
        await memo.controller.on_event(event.get("type"), event.get("object") or body)
        diffbase = getattr(memo, "diffbase", None)
        if event.get("type") == "DELETED" and isinstance(diffbase, RememberedDiffBase):
            diffbase.forget(body.metadata.uid or "")

    if sharded:
        # The shards' owners notice changes from the watch events themselves and add no
        # finalizer through Kopf: every replica would run Kopf's handlers for every resource
        # and record them as handled in the resource (runtime/sharding.py).
        return registry

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
    async def reconcile(
        namespace: str | None, name: str, uid: str, memo: kopf.Memo, **_: Any
    ) -> None:
        """A spec was created or changed, or the operator (re)started: reconcile ahead of
        every resync (the controller's queue), and wait for it."""
        await memo.controller.submit(namespace or "", name, uid)

    @kopf.on.delete(GROUP, VERSION, PLURAL, when=_delete_policy, registry=registry)
    def delete(namespace: str | None, name: str, uid: str, memo: kopf.Memo, **_: Any) -> None:
        """deletionPolicy Delete: remove what the operator created, then let it go."""
        memo.controller.clean_up(namespace or "", name, uid)

    return registry
