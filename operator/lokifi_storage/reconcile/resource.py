"""One reconcile of one LokifiStorage: every part, the owned objects, status and events.

The steps, each returning early when it must:
1. Read the resource fresh (spec, generation and status as the API server has them now, not as
   an older watch event carried them), or take it as the caller knows it is now: a resync
   takes the newest watch event when its resourceVersion is the one the last pass left
   (`reconcile`'s `known`, runtime/schedule.py).
2. Validate the spec with the models. An invalid spec (it passed admission but the models say
   no, e.g. an older CRD) -> Stalled/InvalidSpec with the validation message; nothing else runs.
3. Run every declared part of `PARTS` in parallel, each isolated (reconcile/parts.py): one part
   failing or hanging never blocks the others; a hanging part is reported after
   `part_timeout_seconds`.
4. Write the owned objects that differ: the connection Secret (data merged from the parts) and
   the CronJobs (reconcile/owned.py).
5. Build the desired status (the api/status.py model, turned into JSON only for the patch) and
   patch only the keys that changed; nothing changed -> no PATCH.
6. Post an Event per action taken and per condition that became False or recovered.

With spec.dryRun the same steps run with apply off (observe -> plan -> report, no apply): every
part and owned object reports the writes it would make, status.plan lists them, a part with
changes pending reads False/DryRun, and Events (one per planned change) are posted when the plan
changes. Nothing is written but the status and those Events. `plan()` is the same pass for a
manifest, for `lokifi-storage plan` and `kubectl lks plan`.

Kubernetes API errors while writing (the API server unreachable, a conflict) propagate: the
caller retries the whole reconcile with backoff, which is safe because every step is idempotent.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from lokifi_storage import metrics
from lokifi_storage.api import conditions as types
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import LokifiStorageStatus
from lokifi_storage.api.timestamps import rfc3339
from lokifi_storage.builders.cronjobs import desired_cronjobs
from lokifi_storage.builders.labels import Owner
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.kube import KubeClient
from lokifi_storage.clients.postgres.job_runs import read_job_runs
from lokifi_storage.domain.conditions import (
    build_status,
    read_status,
    reported_blocks,
    with_blocks,
)
from lokifi_storage.domain.events import EventSpec, action_events, condition_events
from lokifi_storage.domain.job_runs import JobRun, overlay_job_runs, resource_key
from lokifi_storage.domain.requeue import Outcome
from lokifi_storage.reconcile import (
    archive_tables,
    backups,
    capacity,
    object_storage,
    partitions,
    redis,
    replicas,
)
from lokifi_storage.reconcile.deletion import (
    being_deleted,
    clean_up_resource,
    created_at,
    release_resource,
)
from lokifi_storage.reconcile.dry_run import mark_dry_run
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.owned import sync_owned
from lokifi_storage.reconcile.parts import (
    Part,
    PartContext,
    run_parts,
)
from lokifi_storage.reconcile.publish import LOKIFI_STORAGES, post_events, write_status
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.results import ReconcilerConfig, ReconcileResult, ResourcePlan
from lokifi_storage.reconcile.secrets import MissingSecretError, SecretReader

__all__ = [
    "LOKIFI_STORAGES",
    "PARTS",
    "ResourceReconciler",
    "format_validation_error",
]

log = logging.getLogger(__name__)


# Every part, in the order their conditions are listed.
PARTS: Final[tuple[Part, ...]] = (
    replicas.PART,
    partitions.PART,
    archive_tables.PART,
    redis.PART,
    object_storage.PART,
    backups.PART,
    capacity.PART,
)


def format_validation_error(error: ValidationError) -> str:
    """`field.path: message; ...` without the offending input values."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        parts.append(f"spec.{where}: {item['msg']}" if where != "spec" else f"spec: {item['msg']}")
    return "; ".join(parts)


def _is_true(status: LokifiStorageStatus, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in status.conditions)


class ResourceReconciler:
    """Reconciles LokifiStorage resources; safe to call from several threads at once."""

    def __init__(
        self,
        kube: KubeClient,
        config: ReconcilerConfig | None = None,
        parts: Sequence[Part] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.kube = kube
        self.config = config or ReconcilerConfig()
        self.parts: tuple[Part, ...] = tuple(parts) if parts is not None else PARTS
        self._clock = clock or (lambda: datetime.now(UTC))
        # A clock given here is an explicit instant to plan at (`plan --now`), which partition
        # ages then use instead of the database server's clock.
        self._explicit_clock = clock is not None
        self._memories: dict[str, dict[str, Any]] = {}
        self._memories_lock = threading.Lock()

    # --- public ------------------------------------------------------------------------------

    def reconcile(
        self,
        namespace: str,
        name: str,
        fence: Fence | None = None,
        known: Mapping[str, Any] | None = None,
    ) -> ReconcileResult:
        """One full pass over the resource `namespace/name`.

        `fence` is the Lease this pass writes under when it is not the process's own: a shard's
        (runtime/sharding.py), so losing one shard stops the work of that shard only. Every
        Kubernetes write of the pass asks it first (KubeClient.writes_under).

        `known`: the resource as the caller knows it is now, read instead of a GET (never
        changed by the pass). The controller passes the newest watch event when its
        resourceVersion is the one the previous pass left (`resource_version`), so nobody
        changed the resource since: what a GET would return, short of a change whose event
        is on its way, which a GET made a moment earlier would miss the same way."""
        fence = fence or self.config.fence
        with self.kube.writes_under(fence.check):
            return self._pass(namespace, name, fence, known)

    def _pass(
        self, namespace: str, name: str, fence: Fence, known: Mapping[str, Any] | None
    ) -> ReconcileResult:
        body = known if known is not None else self.kube.get(LOKIFI_STORAGES, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return ReconcileResult(outcome=Outcome.READY, gone=True)
        meta = body["metadata"]
        owner = Owner(namespace=namespace, name=name, uid=meta["uid"])
        generation = meta.get("generation")
        stored: Mapping[str, Any] = body.get("status") or {}
        current = read_status(stored)
        now = self._clock()

        try:
            spec = LokifiStorageSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            message = format_validation_error(error)
            desired = build_status(
                current, generation, [], LokifiStorageStatus(), [], rfc3339(now), message
            )
            return self._finish(
                owner, stored, desired, [], Outcome.INVALID, now, fence=fence, seen=meta
            )

        apply = not spec.dryRun
        secrets = SecretReader(self.kube, namespace)
        reports, dropped = self._run_parts(
            owner, spec, now, current, created_at(meta), apply, secrets, fence, generation
        )
        runs = self._job_runs(owner, spec, secrets)
        reports = [
            dataclasses.replace(r, condition=overlay_job_runs(r.condition, runs)) for r in reports
        ]
        actions = [action for report in reports for action in report.actions]
        if apply:
            fence.check(f"writing the objects of {namespace}/{name}")
        reports, owned_actions, blocks = sync_owned(
            self.kube,
            owner,
            spec,
            reports,
            current,
            self.config.job_settings,
            apply=apply,
            generation=generation,
        )
        actions += owned_actions
        plan_events: list[EventSpec] = []
        if apply:
            dropped.append("plan")
        else:
            reports, plan, plan_events = mark_dry_run(reports, generation, current)
            blocks = with_blocks(blocks, plan=plan)

        for report in reports:
            blocks = with_blocks(blocks, **reported_blocks(report.status))
        if spec.postgres is None or spec.postgres.connectionSecret is None:
            dropped.append("connectionSecret")
        desired = build_status(
            current,
            generation,
            [report.condition for report in reports],
            blocks,
            dropped,
            rfc3339(now),
        )
        return self._finish(
            owner, stored, desired, actions, _outcome(desired), now, plan_events, fence, meta
        )

    def plan(
        self,
        body: Mapping[str, Any],
        namespace: str,
        *,
        secrets: SecretReader | None = None,
        owned: bool = True,
    ) -> ResourcePlan:
        """The pass a reconcile of `body` would make now, with apply off: nothing is written.

        `body` is a LokifiStorage (from the API server or a manifest; its uid and status, when
        it has them, are what the owned objects and managed rules are compared with).
        `secrets`: where credentials come from (default: the Secrets in `namespace`);
        `owned=False` leaves out the owned objects (no Kubernetes API to compare them with).
        Raises pydantic's ValidationError for an invalid spec.
        """
        meta = body.get("metadata") or {}
        spec = LokifiStorageSpec.model_validate(body.get("spec") or {})
        owner = Owner(
            namespace=namespace, name=str(meta.get("name", "")), uid=str(meta.get("uid") or "")
        )
        current = read_status(body.get("status") or {})
        reports, _ = self._run_parts(
            owner, spec, self._clock(), current, created_at(meta), False, secrets
        )
        if owned:
            reports, _, _ = sync_owned(
                self.kube, owner, spec, reports, current, self.config.job_settings, apply=False
            )
        changes = tuple(change for report in reports for change in report.planned)
        return ResourcePlan(reports=tuple(reports), changes=changes)

    def clean_up(
        self, namespace: str, name: str, uid: str, fence: Fence | None = None
    ) -> list[str]:
        """deletionPolicy Delete: each part removes what the operator created for the resource
        `uid` (reconcile/deletion.py), only while it is being deleted and only while `fence`
        (the process's own when None) holds; every Kubernetes write asks it first, as in a pass.

        Raises CleanupIncompleteError naming every part that could not finish; the caller
        retries and the finalizer keeps the resource until then.
        """
        body = self.kube.get(LOKIFI_STORAGES, namespace, name)
        if not being_deleted(body, uid):
            return []
        fence = fence or self.config.fence
        owner = Owner(namespace=namespace, name=name, uid=uid)
        with self.kube.writes_under(fence.check):
            return clean_up_resource(
                self.kube,
                self.parts,
                body,
                owner,
                now=self._clock(),
                memory=self._memory(uid),
                instance=self.config.instance,
                fence=fence,
            )

    def release(self, body: Mapping[str, Any], fence: Fence | None = None) -> list[str]:
        """The resource is gone: give up the claims it held on shared things, best effort
        (reconcile/deletion.py), while `fence` (the process's own when None) holds."""
        return release_resource(
            self.kube, self.parts, body, now=self._clock(), fence=fence or self.config.fence
        )

    def forget(self, uid: str, namespace: str, name: str) -> None:
        """Drop what the reconciler remembers of a deleted resource, and its metrics."""
        with self._memories_lock:
            self._memories.pop(uid, None)
        metrics.forget(namespace, name)

    # --- steps -------------------------------------------------------------------------------

    def _memory(self, uid: str) -> dict[str, Any]:
        with self._memories_lock:
            return self._memories.setdefault(uid, {})

    def _job_runs(
        self, owner: Owner, spec: LokifiStorageSpec, secrets: SecretReader
    ) -> list[JobRun]:
        """The last runs the CronJobs recorded in the primary; none when it cannot be read
        (the parts report why the primary does not answer)."""
        if spec.postgres is None or not desired_cronjobs(owner, spec, self.config.job_settings):
            return []
        try:
            url = secrets.value(spec.postgres.primary.secretRef)
            return read_job_runs(url, resource_key(owner.namespace, owner.name))
        except (MissingSecretError, ClientError) as error:
            log.debug("job outcomes of %s/%s not read: %s", owner.namespace, owner.name, error)
            return []

    def _run_parts(
        self,
        owner: Owner,
        spec: LokifiStorageSpec,
        now: datetime,
        current: LokifiStorageStatus,
        created: datetime | None,
        apply: bool = True,
        secrets: SecretReader | None = None,
        fence: Fence | None = None,
        generation: int | None = None,
    ) -> tuple[list[PartReport], list[str]]:
        """Every declared part in parallel; status keys of undeclared parts to drop."""
        declared = [p for p in self.parts if p.conditions and p.declared(spec)]
        dropped = [
            key
            for p in self.parts
            if not p.declared(spec)
            for key in p.status_keys
            if not any(key in d.status_keys for d in declared)
        ]
        ctx = PartContext(
            spec=spec,
            namespace=owner.namespace,
            name=owner.name,
            uid=owner.uid,
            secrets=secrets or SecretReader(self.kube, owner.namespace),
            now=now,
            memory=self._memory(owner.uid),
            status=current,
            created=created,
            apply=apply,
            fence=fence or self.config.fence,
            at=now if self._explicit_clock else None,
            generation=generation,
        )
        return run_parts(declared, ctx, self.config.part_timeout_seconds), dropped

    def _finish(
        self,
        owner: Owner,
        stored: Mapping[str, Any],
        desired_status: LokifiStorageStatus,
        actions: list[str],
        outcome: Outcome,
        now: datetime,
        plan_events: Sequence[EventSpec] = (),
        fence: Fence | None = None,
        seen: Mapping[str, Any] | None = None,
    ) -> ReconcileResult:
        """Patch what differs of `stored` (`.status` as read), post the Events, set metrics.

        `seen`: the metadata read at the start of the pass (its resourceVersion is the
        resource's as left by a pass that patches nothing)."""
        fence = fence or self.config.fence
        fence.check(f"writing the status of {owner.namespace}/{owner.name}")
        memory = self._memory(owner.uid)
        patched = write_status(self.kube, owner, stored, desired_status, memory)
        version = memory.get("written_version") if patched else (seen or {}).get("resourceVersion")
        for action in actions:  # the Event lists them cut at its size limit; the log has each
            log.info("%s/%s: %s", owner.namespace, owner.name, action)
        events = action_events(actions)
        events += condition_events(read_status(stored).conditions, desired_status.conditions)
        events += plan_events
        post_events(self.kube, owner, events, now, self.config.instance, fence)
        metrics.record_status(owner.namespace, owner.name, desired_status)
        ready = next((c for c in desired_status.conditions if c.type == types.READY), None)
        return ReconcileResult(
            outcome=outcome,
            ready_message=ready.message if ready else "",
            status_patched=patched,
            actions=tuple(actions),
            events=tuple(events),
            resource_version=version,
        )


def _outcome(status: LokifiStorageStatus) -> Outcome:
    """Ready; stalled (only a human can help, nothing to retry); or not ready (retry soon)."""
    if _is_true(status, types.READY):
        return Outcome.READY
    if _is_true(status, types.STALLED) and not _is_true(status, types.RECONCILING):
        return Outcome.STALLED
    return Outcome.NOT_READY
