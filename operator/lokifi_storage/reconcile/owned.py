"""Write the Kubernetes objects the resource owns: the connection Secret here, the CronJobs in
reconcile/owned_cronjobs.py; `sync_owned` does both and turns a refusal into a condition.

Build (builders/) -> compare with what the API server has (domain/schedule_diff.py) -> write
only what differs; return one short sentence per write, which becomes an Event. An unchanged
object costs a GET (or a LIST for CronJobs) and no write; a new resource whose spec declares no
CronJob does not LIST them (`sync_owned`).

The connection Secret is never written without DATABASE_URL: when the primary's Secret is
missing the application keeps the Secret it has rather than getting one without a database.
An existing Secret of that name that this resource does not control (another owner, or none: a
hand-made Secret, perhaps the very credentials the spec reads) is never adopted or changed
(SecretConflict, reconcile/owned_refusal.py): adopting it would hand it to the garbage collector
with the resource. A new Secret is created with a POST, which fails if the name was taken since
it was read; an update carries the uid that was checked, so it cannot land on an object created
in between. Keys the parts no longer produce are removed (`_drop_stale_keys`). On a
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

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from lokifi_storage.api import conditions
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import ConnectionSecretStatus, LokifiStorageStatus, failed
from lokifi_storage.builders.cronjobs import JobSettings
from lokifi_storage.builders.labels import Owner
from lokifi_storage.builders.secret import build_connection_secret, decode_secret_data
from lokifi_storage.clients.errors import Conflict
from lokifi_storage.clients.kube import SECRETS, KubeClient
from lokifi_storage.domain.change_plan import Change, FieldChange
from lokifi_storage.domain.connection_secret import build_connection_secret_data
from lokifi_storage.domain.schedule_diff import needs_write
from lokifi_storage.reconcile.dry_run import add_planned
from lokifi_storage.reconcile.owned_cronjobs import plan_or_sync_cronjobs
from lokifi_storage.reconcile.owned_refusal import (
    OwnedKind,
    OwnedObjectRefusedError,
    controller_uid,
    forbidden_is_refusal,
    not_ours,
    pinned,
)
from lokifi_storage.reconcile.report import PartReport

__all__ = ["SecretSync", "sync_connection_secret", "sync_owned"]

_SECRET = OwnedKind(
    "Secret",
    Reason.SECRET_CONFLICT,
    "Choose another postgres.connectionSecret.name, or delete that Secret if it is a leftover",
)


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
    with forbidden_is_refusal():
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
    if observed is not None and controller_uid(observed) != owner.uid:
        raise not_ours(_SECRET, name, observed, owner)
    status = ConnectionSecretStatus(name=name)
    apply_needed = needs_write(desired, observed)
    if not apply_needed and not _stale_keys(observed, data):
        return SecretSync(status=status)
    if not apply:
        return SecretSync(status=status, planned=[_secret_change(name, observed, data)])
    if observed is None:
        try:
            kube.create(SECRETS, desired)
        except Conflict:
            raise not_ours(_SECRET, name, None, owner) from None
        return SecretSync([f"created connection Secret {name} ({len(data)} keys)"], status)
    written = observed
    if apply_needed:
        # The object patched is the one whose owner was just checked.
        try:
            written = kube.apply(SECRETS, pinned(desired, observed["metadata"]["uid"]))
        except Conflict:
            raise not_ours(_SECRET, name, None, owner) from None
    _drop_stale_keys(kube, written, data)
    before = decode_secret_data(observed)
    changed = sorted(k for k in set(before) | set(data) if before.get(k) != data.get(k))
    what = ", ".join(changed) if changed else "metadata"
    return SecretSync([f"updated connection Secret {name}: {what}"], status)


def _stale_keys(observed: Mapping[str, Any] | None, data: Mapping[str, str]) -> list[str]:
    """Keys the Secret holds that the parts no longer produce."""
    return sorted(set((observed or {}).get("data") or {}) - set(data))


def _drop_stale_keys(kube: KubeClient, secret: Mapping[str, Any], data: Mapping[str, str]) -> None:
    """Remove the keys `secret` holds that `data` does not.

    Server-side apply removes a key it no longer sends only when no other field manager owns it
    too, and the POST that creates the Secret makes an owner of its own (operation Update) for
    every key it wrote. Without this, a key the spec stopped producing (REDIS_CLUSTER_NODES after
    spec.redis is removed, the S3_BUCKET_* key of a bucket taken out) would stay for good.
    `resourceVersion` is the precondition: a Secret changed since it was read is left to the
    next pass, which finds the keys again.
    """
    stale = _stale_keys(secret, data)
    if not stale:
        return
    meta = secret["metadata"]
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "data": dict.fromkeys(stale)}
    with suppress(Conflict):
        kube.patch_merge(SECRETS, meta["namespace"], meta["name"], patch)


def _delete_renamed(kube: KubeClient, owner: Owner, old: str, new: str) -> list[str]:
    """Delete the Secret of the name before a rename, if this resource still controls it."""
    observed = kube.get_secret(owner.namespace, old)
    if observed is None or controller_uid(observed) != owner.uid:
        return []  # gone already, or taken over by someone else: not ours to delete
    if not kube.delete(SECRETS, owner.namespace, old, uid=observed["metadata"]["uid"]):
        return []
    return [f"deleted connection Secret {old}: renamed to {new}"]


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
