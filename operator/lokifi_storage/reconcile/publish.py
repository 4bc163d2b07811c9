"""What a reconcile tells the world: the status patch and the Events.

The desired status arrives as the api/status.py model and becomes JSON here, the one place it is
sent; only the keys that differ from what the API server holds are patched, so a pass that
finds nothing to change sends no PATCH. An Event that cannot be posted is logged and dropped:
an event lost is not a reconcile lost. The fence is asked again before each Event, not only
before the status: a leader paused between the two resumes with its Lease gone, and an Event it
posted then would be a write next to the new leader.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from lokifi_storage.api.coordinates import API_VERSION, GROUP, KIND, PLURAL, VERSION
from lokifi_storage.api.status import LokifiStorageStatus
from lokifi_storage.builders.labels import Owner
from lokifi_storage.clients.kube import KubeClient, ObjectRef, Resource
from lokifi_storage.domain.conditions import dropped_fields, status_json, status_patch
from lokifi_storage.domain.events import EventSpec
from lokifi_storage.reconcile.fence import Fence

__all__ = ["COMPONENT", "LOKIFI_STORAGES", "post_events", "write_status"]

log = logging.getLogger(__name__)

LOKIFI_STORAGES: Final = Resource(GROUP, VERSION, PLURAL)
COMPONENT: Final = "lokifi-storage-operator"


def write_status(
    kube: KubeClient,
    owner: Owner,
    stored: Mapping[str, Any],
    desired: LokifiStorageStatus,
    memory: dict[str, Any],
) -> bool:
    """Patch the keys of `desired` that differ from `stored` (`.status` as read); True when a
    PATCH was sent. `memory` is the resource's own, kept across reconciles."""
    sent = status_json(desired)
    patch = status_patch(stored, sent)
    if patch and memory.get("last_status") == (sent, stored):
        # The API server stored something else than what was sent last time, and would
        # again: re-sending would write on every resync without ever converging. Only
        # fields missing from what it stored mean a CRD that prunes them (older than the
        # operator); the desired status carries no null, so that is not a false alarm.
        dropped = dropped_fields({k: sent[k] for k in patch if k in sent}, stored)
        if dropped and not memory.get("pruning_reported"):
            log.warning(
                "%s/%s: the API server drops status fields %s: the CRD is older than the "
                "operator; apply crds/lokifistorage.yaml of this version",
                owner.namespace,
                owner.name,
                ", ".join(dropped[:10]),
            )
            memory["pruning_reported"] = True
        return False
    if not patch:
        return False
    written = kube.patch_status(LOKIFI_STORAGES, owner.namespace, owner.name, patch)
    if written is not None:
        memory["last_status"] = (sent, written.get("status") or {})
    # The resource as this write left it: a watch event of this version (and no later one)
    # means nobody changed it since (ReconcileResult.resource_version).
    memory["written_version"] = (written or {}).get("metadata", {}).get("resourceVersion")
    return True


def post_events(
    kube: KubeClient,
    owner: Owner,
    events: Sequence[EventSpec],
    now: datetime,
    instance: str,
    fence: Fence | None = None,
) -> None:
    """Post each Event about the resource, as `instance` of the operator, while `fence` holds."""
    about = ObjectRef(
        api_version=API_VERSION,
        kind=KIND,
        namespace=owner.namespace,
        name=owner.name,
        uid=owner.uid,
    )
    for done, event in enumerate(events):
        if fence is not None and fence.lost:
            log.info(
                "%s/%s: %d event(s) not posted: this operator lost its Lease",
                owner.namespace,
                owner.name,
                len(events) - done,
            )
            return
        try:
            kube.post_event(
                about,
                event.type,
                event.reason,
                event.message,
                component=COMPONENT,
                instance=instance,
                now=now,
            )
        except Exception as error:  # an event lost is not a reconcile lost
            log.warning(
                "could not post event %s for %s/%s: %s",
                event.reason,
                owner.namespace,
                owner.name,
                type(error).__name__,
            )
