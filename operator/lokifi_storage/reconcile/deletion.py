"""What happens when a LokifiStorage goes away: its parts' clean-up and the release of its
claims.

Deletion never runs the reconcile pass: it reads only the spec, asks each declared part to undo
(deletionPolicy Delete, reported by Events) or to let go of what it claimed on shared things
(whatever the policy, reported in the log). That is a different flow from reconcile/resource.py
and lives here, with the one way both build their part context.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeGuard

from pydantic import ValidationError

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.timestamps import parse_rfc3339
from lokifi_storage.builders.labels import Owner
from lokifi_storage.clients.kube import KubeClient
from lokifi_storage.domain.conditions import read_status
from lokifi_storage.domain.events import EventSpec, action_events
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.parts import (
    CleanupIncompleteError,
    Part,
    PartContext,
    clean_up_parts,
    release_parts,
)
from lokifi_storage.reconcile.publish import post_events
from lokifi_storage.reconcile.secrets import SecretReader

__all__ = ["being_deleted", "clean_up_resource", "created_at", "plain", "release_resource"]

log = logging.getLogger(__name__)


def created_at(meta: Mapping[str, Any]) -> datetime | None:
    """The resource's creationTimestamp, or None before the API server set one."""
    stamp = meta.get("creationTimestamp")
    return parse_rfc3339(str(stamp)) if stamp else None


def plain(value: Any) -> Any:
    """Kopf's mapping views as plain dicts and lists, as the models expect."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def being_deleted(body: Mapping[str, Any] | None, uid: str) -> TypeGuard[Mapping[str, Any]]:
    """Whether `body` is the resource `uid` and is being deleted.

    Deletion finds the resource by its name, and a name can stand for a new resource by then:
    once its finalizer is gone (removed by hand, or by a replica that took over), the old one
    goes away at once and the same manifest applied again makes another. What the operator made
    for that one is not the deleted one's to remove.
    """
    meta = (body or {}).get("metadata") or {}
    return meta.get("uid") == uid and bool(meta.get("deletionTimestamp"))


def _deletion_context(
    kube: KubeClient,
    body: Mapping[str, Any],
    owner: Owner,
    now: datetime,
    **more: Any,
) -> PartContext | None:
    """The parts' context for a resource being deleted; None when its spec does not validate
    (an unreadable spec cannot say what to remove or release: nothing is touched)."""
    try:
        spec = LokifiStorageSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return None
    return PartContext(
        spec=spec,
        namespace=owner.namespace,
        name=owner.name,
        uid=owner.uid,
        secrets=SecretReader(kube, owner.namespace),
        now=now,
        status=read_status(body.get("status") or {}),
        **more,
    )


def clean_up_resource(
    kube: KubeClient,
    parts: Sequence[Part],
    body: Mapping[str, Any],
    owner: Owner,
    *,
    now: datetime,
    memory: dict[str, Any],
    instance: str,
    fence: Fence,
) -> list[str]:
    """deletionPolicy Delete: each part removes what the operator created, with an Event per
    thing removed and per part that could not finish, each while `fence` holds.

    Raises CleanupIncompleteError naming every part that could not finish; the caller retries
    and the finalizer keeps the resource until then. Raises LeadershipLost, with nothing more
    removed, once the fence is shut.
    """
    ctx = _deletion_context(
        kube, body, owner, now, memory=memory, created=created_at(body["metadata"]), fence=fence
    )
    if ctx is None:
        return []
    actions, failures = clean_up_parts(parts, ctx)
    events = action_events(actions, Reason.CLEANED_UP)
    events += [EventSpec("Warning", Reason.CLEANUP_FAILED, failure) for failure in failures]
    post_events(kube, owner, events, now, instance, fence)
    if failures:
        raise CleanupIncompleteError("; ".join(failures))
    return actions


def release_resource(
    kube: KubeClient,
    parts: Sequence[Part],
    body: Mapping[str, Any],
    *,
    now: datetime,
    fence: Fence,
) -> list[str]:
    """The resource is gone: give up the claims it held on shared things (Redis settings,
    lifecycle rules, tables), so another resource may manage them, each while `fence` holds.
    Best effort; a claim that cannot be released now is named in the log (docs/operations.md
    says how to remove it by hand)."""
    body = plain(body)
    meta = body.get("metadata") or {}
    owner = Owner(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
    )
    ctx = _deletion_context(kube, body, owner, now, fence=fence)
    if ctx is None:
        return []
    released, failures = release_parts(parts, ctx)
    for line in released:
        log.info("%s/%s deleted: %s", owner.namespace, owner.name, line)
    for failure in failures:
        log.warning("%s/%s deleted, claims not released: %s", owner.namespace, owner.name, failure)
    return released
