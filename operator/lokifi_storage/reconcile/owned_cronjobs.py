"""The CronJobs a resource owns (backups, VACUUM, partition pack and export): made, updated and
deleted so they match the spec.

Build (builders/cronjobs.py) -> LIST this resource's CronJobs (by label, then by controller uid)
-> compare (domain/schedule_diff.py) -> write only what differs, with server-side apply. Every
write lands on the object it was planned for, never on another one under the same name:
- a CronJob to create is read by name first. Under that name the operator may find an object it
  does not control (made by hand, or by another tool): it is never adopted or changed
  (CronJobConflict; forced server-side apply would take its fields over, merge our container
  into its list and add our ownerReference, handing it to the garbage collector). Or the
  CronJob of a deleted LokifiStorage of the same name that the garbage collector has not
  removed yet (GarbageCollectionPending, retried). The create itself is an unforced apply: an
  object made under the name since the read is refused (409), not taken over;
- an update or a delete carries the uid of the object the LIST found, so it is refused if the
  name now belongs to another object.

With apply off the same reads and comparisons run and the writes come back as planned changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.builders.cronjobs import JobSettings, desired_cronjobs
from lokifi_storage.builders.labels import (
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Owner,
    label_value,
)
from lokifi_storage.clients.errors import Conflict
from lokifi_storage.clients.kube import CRONJOBS, KubeClient
from lokifi_storage.domain.change_plan import Change, FieldChange, changed_fields
from lokifi_storage.domain.schedule_diff import plan_owned_objects
from lokifi_storage.reconcile.owned_refusal import (
    OwnedKind,
    controller_uid,
    forbidden_is_refusal,
    not_ours,
    pinned,
)

__all__ = ["CronJobSync", "owned_selector", "plan_or_sync_cronjobs", "sync_cronjobs"]

_CRONJOB = OwnedKind(
    "CronJob",
    Reason.CRONJOB_CONFLICT,
    "This resource's CronJobs are named after it (backup ones after backups.schedules[].name "
    "too): delete or rename that CronJob if it is a leftover, or rename the schedule",
)


def owned_selector(owner: Owner) -> str:
    """Label selector that narrows a LIST to this resource's objects (ownership is by uid)."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}={label_value(owner.name)}"


@dataclass(frozen=True)
class CronJobSync:
    """What syncing the CronJobs did (`actions`) or, with apply off, would do (`planned`)."""

    actions: list[str] = field(default_factory=list)
    planned: list[Change] = field(default_factory=list)


def sync_cronjobs(
    kube: KubeClient, owner: Owner, spec: LokifiStorageSpec, settings: JobSettings
) -> list[str]:
    """Create, update and delete this resource's CronJobs so they match the spec."""
    return plan_or_sync_cronjobs(kube, owner, spec, settings).actions


def plan_or_sync_cronjobs(
    kube: KubeClient,
    owner: Owner,
    spec: LokifiStorageSpec,
    settings: JobSettings,
    *,
    apply: bool = True,
    none_yet: bool = False,
) -> CronJobSync:
    """`sync_cronjobs`, or with `apply=False` the same comparison returning planned changes.

    `none_yet`: the caller knows that no CronJob of this resource can exist (a new resource
    whose spec never changed); then a spec that declares none costs no LIST."""
    if none_yet and not desired_cronjobs(owner, spec, settings):
        return CronJobSync()
    with forbidden_is_refusal():
        if apply:
            return CronJobSync(actions=_sync_cronjobs(kube, owner, spec, settings))
        return CronJobSync(planned=_plan_cronjobs(kube, owner, spec, settings))


def _plan_cronjobs(
    kube: KubeClient, owner: Owner, spec: LokifiStorageSpec, settings: JobSettings
) -> list[Change]:
    desired = desired_cronjobs(owner, spec, settings)
    observed = {
        o["metadata"]["name"]: o
        for o in kube.list_owned(CRONJOBS, owner.namespace, owner.uid, owned_selector(owner))
    }
    plan = plan_owned_objects(desired, observed.values())
    for obj in plan.create:  # a name held by something else is the refusal a write would meet
        _free_or_ours(kube, owner, obj["metadata"]["name"])
    changes = [
        Change(
            "cronJobs",
            obj["metadata"]["name"],
            "create",
            f"create CronJob {obj['metadata']['name']} ({obj['spec']['schedule']})",
            (FieldChange("spec.schedule", None, obj["spec"]["schedule"]),),
        )
        for obj in plan.create
    ]
    for obj in plan.patch:
        name = obj["metadata"]["name"]
        fields = changed_fields(
            {"spec": obj["spec"], "metadata": {"labels": obj["metadata"].get("labels", {})}},
            observed[name],
        )
        what = ", ".join(f.name for f in fields) or "metadata"
        changes.append(
            Change("cronJobs", name, "update", f"update CronJob {name}: {what}", tuple(fields))
        )
    changes += [
        Change("cronJobs", name, "delete", f"delete CronJob {name}") for name in plan.delete
    ]
    return changes


def _sync_cronjobs(
    kube: KubeClient, owner: Owner, spec: LokifiStorageSpec, settings: JobSettings
) -> list[str]:
    desired = desired_cronjobs(owner, spec, settings)
    observed = kube.list_owned(CRONJOBS, owner.namespace, owner.uid, owned_selector(owner))
    uids = {o["metadata"]["name"]: o["metadata"]["uid"] for o in observed}
    plan = plan_owned_objects(desired, observed)
    actions: list[str] = []
    for obj in plan.create:
        _create(kube, owner, obj)
        actions.append(f"created CronJob {obj['metadata']['name']} ({obj['spec']['schedule']})")
    for obj in plan.patch:
        name = obj["metadata"]["name"]
        kube.apply(CRONJOBS, pinned(obj, uids[name]))
        actions.append(f"updated CronJob {name} ({obj['spec']['schedule']})")
    for name in plan.delete:
        if kube.delete(CRONJOBS, owner.namespace, name, uid=uids[name]):
            actions.append(f"deleted CronJob {name}")
    return actions


def _free_or_ours(kube: KubeClient, owner: Owner, name: str) -> dict[str, Any] | None:
    """The CronJob under `name` when this resource controls it, None when the name is free;
    the refusal when something else holds it (module docstring)."""
    existing = kube.get(CRONJOBS, owner.namespace, name)
    if existing is not None and controller_uid(existing) != owner.uid:
        raise not_ours(_CRONJOB, name, existing, owner)
    return existing


def _create(kube: KubeClient, owner: Owner, obj: Mapping[str, Any]) -> None:
    """Create CronJob `obj`, which the LIST did not find among this resource's."""
    name = obj["metadata"]["name"]
    existing = _free_or_ours(kube, owner, name)
    if existing is not None:  # ours, but its labels were removed: the apply puts them back
        kube.apply(CRONJOBS, pinned(obj, existing["metadata"]["uid"]))
        return
    try:
        kube.apply(CRONJOBS, obj, force=False)
    except Conflict:  # made under the name since the read: whoever made it keeps it
        raise not_ours(_CRONJOB, name, kube.get(CRONJOBS, owner.namespace, name), owner) from None
