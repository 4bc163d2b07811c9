"""Write the Kubernetes objects the resource owns: the connection Secret and the CronJobs.

Build (builders/) -> compare with what the API server has (domain/schedule_diff.py) -> write
only what differs, with server-side apply; return one short sentence per write, which becomes an
Event. An unchanged object costs a GET (or a LIST for CronJobs) and no write; a new resource
whose spec declares no CronJob does not LIST them (`sync_owned`).

The connection Secret is never written without DATABASE_URL: when the primary's Secret is
missing the application keeps the Secret it has rather than getting one without a database.
An existing Secret of that name that this resource does not control (another owner, or none: a
hand-made Secret, perhaps the very credentials the spec reads) is never adopted or changed
(SecretConflict): adopting it would hand it to the garbage collector with the resource. A new
Secret is created with a POST, which fails if the name was taken since it was read; an update
carries the uid that was checked, so it cannot land on an object created in between. On a
resource's first pass (no pass has stamped `status.observedGeneration` yet) the POST goes first,
without the GET: the Secret is almost never there yet, and when the name is taken (a hand-made
Secret, or the Secret of a pass that crashed before its status patch) the POST fails and the
pass reads it and goes on as any other pass would. That spares a new resource one of its API
requests; later passes read first, so a pass with nothing to write sends no POST.
The name written is recorded in status.connectionSecret. When `connectionSecret.name` changes,
the Secret of the old name is deleted once the new one exists, and only if this resource still
controls it (checked by uid, deleted with a uid precondition): the record is how it is found
without permission to list every Secret of the namespace. A crash between the two steps resumes:
the record still names the old Secret until the status patch that follows the delete. When
`connectionSecret` is removed from the spec the Secret is left for the pods that read it; it is
owned, so the garbage collector removes it with the resource.

With apply off (`lokifi-storage plan`, spec.dryRun) the same reads and comparisons run and the
writes come back as planned changes: the Secret's changed keys (never values), the CronJobs'
changed fields.

A 403 from the API server is a missing RBAC rule, which only a human can add: it becomes the
part's condition (reason Forbidden, with the API server's sentence naming the verb and resource;
`sync_owned` puts it on PostgresReady or BackupsReady) instead of a retry loop that only the
operator's log would show.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from lokifi_storage.api import conditions
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import ConnectionSecretStatus, LokifiStorageStatus, failed
from lokifi_storage.builders.cronjobs import JobSettings, desired_cronjobs
from lokifi_storage.builders.labels import (
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Owner,
    label_value,
)
from lokifi_storage.builders.secret import build_connection_secret, decode_secret_data
from lokifi_storage.clients.errors import ClientError, Conflict, Refused
from lokifi_storage.clients.kube import CRONJOBS, SECRETS, KubeClient
from lokifi_storage.domain.change_plan import Change, FieldChange, changed_fields
from lokifi_storage.domain.connection_secret import build_connection_secret_data
from lokifi_storage.domain.schedule_diff import needs_write, plan_owned_objects
from lokifi_storage.reconcile.dry_run import add_planned
from lokifi_storage.reconcile.report import PartReport

__all__ = [
    "CronJobSync",
    "OwnedObjectRefusedError",
    "SecretSync",
    "sync_connection_secret",
    "sync_cronjobs",
    "sync_owned",
]


class OwnedObjectRefusedError(ClientError):
    """An owned object could not be written for a reason a human has to fix."""


def _controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences", []):
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


@contextmanager
def _forbidden_is_refusal() -> Iterator[None]:
    try:
        yield
    except Refused as error:
        if error.reason != "Forbidden":
            raise
        raise OwnedObjectRefusedError(
            f"{error.message}; grant it to the operator's ServiceAccount "
            "(the Helm chart's templates/rbac.yaml lists every rule the operator needs)",
            reason=Reason.FORBIDDEN,
        ) from error


@dataclass(frozen=True)
class SecretSync:
    """What syncing the connection Secret did.

    `status`: the status.connectionSecret block to write; None keeps the recorded one (the
    Secret was not written, so the record must still name the Secret that exists).
    """

    actions: list[str] = field(default_factory=list)
    status: ConnectionSecretStatus | None = None
    planned: list[Change] = field(default_factory=list)


def sync_connection_secret(
    kube: KubeClient,
    owner: Owner,
    spec: LokifiStorageSpec,
    data: Mapping[str, str],
    recorded: str | None = None,
    *,
    apply: bool = True,
    first: bool = False,
) -> SecretSync:
    """Create or update the connection Secret when its data or metadata differ.

    `recorded`: the name in status.connectionSecret; when it differs from the spec's name, that
    Secret is the one of before a rename, deleted once the new one exists. `apply=False`:
    nothing is written; `planned` says what would be (and status keeps the recorded name).
    `first`: the resource's first pass, which creates before it reads (module docstring).
    """
    with _forbidden_is_refusal():
        written = _sync_connection_secret(kube, owner, spec, data, apply, first=first)
        if not apply:
            return _planned_rename(written, recorded)
        if written.status is None or recorded is None or recorded == written.status.name:
            return written
        deleted = _delete_renamed(kube, owner, recorded, written.status.name)
        return SecretSync(written.actions + deleted, written.status)


def _planned_rename(planned: SecretSync, recorded: str | None) -> SecretSync:
    """With apply off: add the delete a rename would make; status keeps what exists now."""
    changes = list(planned.planned)
    target = planned.status.name if planned.status else None
    if recorded and target and recorded != target:
        changes.append(
            Change(
                "connectionSecret",
                recorded,
                "delete",
                f"delete connection Secret {recorded}: renamed to {target}",
            )
        )
    if recorded:
        return SecretSync(planned=changes, status=ConnectionSecretStatus(name=recorded))
    return SecretSync(planned=changes, status=None if planned.planned else planned.status)


def _secret_change(
    name: str, observed: Mapping[str, Any] | None, data: Mapping[str, str]
) -> Change:
    """The Secret write as a change naming the keys that differ (values never)."""
    if observed is None:
        keys = tuple(FieldChange(k, secret=True) for k in sorted(data))
        return Change(
            "connectionSecret",
            name,
            "create",
            f"create connection Secret {name} ({len(data)} keys)",
            keys,
        )
    before = decode_secret_data(observed)
    changed = sorted(k for k in set(before) | set(data) if before.get(k) != data.get(k))
    what = ", ".join(changed) if changed else "metadata"
    return Change(
        "connectionSecret",
        name,
        "update",
        f"update connection Secret {name}: {what}",
        tuple(FieldChange(k, secret=True) for k in changed),
    )


def _sync_connection_secret(
    kube: KubeClient,
    owner: Owner,
    spec: LokifiStorageSpec,
    data: Mapping[str, str],
    apply: bool = True,
    *,
    first: bool = False,
) -> SecretSync:
    if spec.postgres is None or spec.postgres.connectionSecret is None:
        return SecretSync()
    if "DATABASE_URL" not in data:
        return SecretSync()
    name = spec.postgres.connectionSecret.name
    desired = build_connection_secret(owner, name, data)
    if first and apply:
        with suppress(Conflict):  # the name is taken: read it below, as any pass does
            kube.create(SECRETS, desired)
            created = f"created connection Secret {name} ({len(data)} keys)"
            return SecretSync([created], ConnectionSecretStatus(name=name))
    observed = kube.get_secret(owner.namespace, name)
    if observed is not None and _controller_uid(observed) != owner.uid:
        raise _not_ours(name, observed)
    status = ConnectionSecretStatus(name=name)
    if not needs_write(desired, observed):
        return SecretSync(status=status)
    if not apply:
        return SecretSync(status=status, planned=[_secret_change(name, observed, data)])
    if observed is None:
        try:
            kube.create(SECRETS, desired)
        except Conflict:
            raise _not_ours(name, None) from None
        return SecretSync([f"created connection Secret {name} ({len(data)} keys)"], status)
    # The uid is a precondition: the object patched is the one whose owner was just checked.
    checked = {**desired, "metadata": {**desired["metadata"], "uid": observed["metadata"]["uid"]}}
    try:
        kube.apply(SECRETS, checked)
    except Conflict:
        raise _not_ours(name, None) from None
    before = decode_secret_data(observed)
    changed = sorted(k for k in set(before) | set(data) if before.get(k) != data.get(k))
    what = ", ".join(changed) if changed else "metadata"
    return SecretSync([f"updated connection Secret {name}: {what}"], status)


def _not_ours(name: str, observed: Mapping[str, Any] | None) -> OwnedObjectRefusedError:
    """SecretConflict naming who controls Secret `name` and what the admin can do."""
    if observed is None:
        whose = "was created by someone else while the operator wrote it"
    else:
        controller = next(
            (r for r in observed["metadata"].get("ownerReferences", []) if r.get("controller")),
            None,
        )
        whose = (
            "exists and has no controlling owner (the operator never adopts a Secret it did "
            "not create; it may hold credentials)"
            if controller is None
            else f"is controlled by {controller.get('kind')} {controller.get('name')!r}"
        )
    return OwnedObjectRefusedError(
        f"Secret {name!r} {whose}; it was left unchanged. Choose another "
        "postgres.connectionSecret.name, or delete that Secret if it is a leftover",
        reason=Reason.SECRET_CONFLICT,
    )


def _delete_renamed(kube: KubeClient, owner: Owner, old: str, new: str) -> list[str]:
    """Delete the Secret of the name before a rename, if this resource still controls it."""
    observed = kube.get_secret(owner.namespace, old)
    if observed is None or _controller_uid(observed) != owner.uid:
        return []  # gone already, or taken over by someone else: not ours to delete
    if not kube.delete(SECRETS, owner.namespace, old, uid=observed["metadata"]["uid"]):
        return []
    return [f"deleted connection Secret {old}: renamed to {new}"]


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
    with _forbidden_is_refusal():
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
    plan = plan_owned_objects(desired, observed)
    actions: list[str] = []
    for obj in plan.create:
        kube.apply(CRONJOBS, obj)
        actions.append(f"created CronJob {obj['metadata']['name']} ({obj['spec']['schedule']})")
    for obj in plan.patch:
        kube.apply(CRONJOBS, obj)
        actions.append(f"updated CronJob {obj['metadata']['name']} ({obj['spec']['schedule']})")
    for name in plan.delete:
        if kube.delete(CRONJOBS, owner.namespace, name):
            actions.append(f"deleted CronJob {name}")
    return actions


def sync_owned(
    kube: KubeClient,
    owner: Owner,
    spec: LokifiStorageSpec,
    reports: list[PartReport],
    current: LokifiStorageStatus,
    job_settings: JobSettings,
    *,
    apply: bool = True,
    generation: int | None = None,
) -> tuple[list[PartReport], list[str], LokifiStorageStatus]:
    """Write the connection Secret and CronJobs; a refusal becomes a part's condition.

    Returns the reports, the actions taken and the status of the owned objects (its
    connectionSecret block set when there is one to write). With apply off the writes they
    would make are added to the reports' `planned` (the Secret's to PostgresReady's report, the
    CronJobs' to BackupsReady's or, without backups, PostgresReady's).

    `generation` (metadata.generation): on the resource's first pass at generation 1 no
    CronJob of it can exist unless its spec declares one: CronJobs are made only from a spec
    that declares them, and this spec is the only one it ever had. So a spec without
    CronJobs skips the LIST then. Every later pass LISTs, so a CronJob a pass that crashed
    before its status patch may have left is still found.
    """
    actions: list[str] = []
    blocks = LokifiStorageStatus()
    data = build_connection_secret_data(*(r.secret_data for r in reports))
    recorded = current.connectionSecret.name if current.connectionSecret else None
    first = current.observedGeneration is None
    try:
        secret = sync_connection_secret(kube, owner, spec, data, recorded, apply=apply, first=first)
    except OwnedObjectRefusedError as refused:
        reports = _override(reports, conditions.POSTGRES_READY, refused)
    else:
        actions += secret.actions
        reports = add_planned(reports, (conditions.POSTGRES_READY,), secret.planned)
        if secret.status is not None:
            blocks = LokifiStorageStatus(connectionSecret=secret.status)
    try:
        cronjobs = plan_or_sync_cronjobs(
            kube, owner, spec, job_settings, apply=apply, none_yet=first and generation == 1
        )
    except OwnedObjectRefusedError as refused:
        reports = _override(reports, conditions.BACKUPS_READY, refused)
    else:
        actions += cronjobs.actions
        kinds = (conditions.BACKUPS_READY, conditions.POSTGRES_READY)
        reports = add_planned(reports, kinds, cronjobs.planned)
    return reports, actions, blocks


def _override(
    reports: list[PartReport], kind: str, refused: OwnedObjectRefusedError
) -> list[PartReport]:
    """Replace (or add) the condition `kind` with the refusal."""
    refusal = failed(kind, refused.reason, refused.message)
    out = [r for r in reports if r.condition.type != kind]
    kept = [r for r in reports if r.condition.type == kind]
    status = kept[0].status if kept else LokifiStorageStatus()
    return [*out, PartReport(condition=refusal, status=status)]
