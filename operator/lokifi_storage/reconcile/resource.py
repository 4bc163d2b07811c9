"""One reconcile of one LokifiStorage: every part, the owned objects, status and events.

The steps, each returning early when it must:
1. Read the resource fresh (spec, generation and status as the API server has them now, not as
   an older watch event carried them).
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
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from lokifi_storage import metrics
from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.coordinates import API_VERSION, GROUP, KIND, PLURAL, VERSION
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import LokifiStorageStatus, PlanStatus, failed
from lokifi_storage.api.timestamps import rfc3339
from lokifi_storage.builders.cronjobs import JobSettings, desired_cronjobs
from lokifi_storage.builders.labels import Owner
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.job_runs import read_job_runs
from lokifi_storage.clients.kube import KubeClient, ObjectRef, Resource
from lokifi_storage.domain.change_plan import Change, plan_status, plan_summary
from lokifi_storage.domain.conditions import (
    EventSpec,
    build_status,
    condition_events,
    dropped_fields,
    read_status,
    reported_blocks,
    status_json,
    status_patch,
    with_blocks,
)
from lokifi_storage.domain.connection_secret import build_connection_secret_data
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
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.owned import (
    OwnedObjectRefusedError,
    plan_or_sync_cronjobs,
    sync_connection_secret,
)
from lokifi_storage.reconcile.parts import (
    CleanupIncompleteError,
    Part,
    PartContext,
    clean_up_parts,
    failed_reports,
    release_parts,
    run_part,
)
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.secrets import MissingSecretError, SecretReader

__all__ = [
    "LOKIFI_STORAGES",
    "PARTS",
    "ReconcileResult",
    "ReconcilerConfig",
    "ResourcePlan",
    "ResourceReconciler",
    "format_validation_error",
]

log = logging.getLogger(__name__)

LOKIFI_STORAGES: Final = Resource(GROUP, VERSION, PLURAL)
COMPONENT: Final = "lokifi-storage-operator"

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


@dataclass(frozen=True)
class ReconcilerConfig:
    """Operator-wide settings of every reconcile."""

    job_settings: JobSettings = field(default_factory=JobSettings)
    instance: str = "local"
    part_timeout_seconds: float = 120.0
    # Lost with the Lease (runtime/startup.py): parts stop and nothing more is written.
    fence: Fence = field(default_factory=Fence)


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconcile found and did."""

    outcome: Outcome
    ready_message: str = ""
    status_patched: bool = False
    actions: tuple[str, ...] = ()
    events: tuple[EventSpec, ...] = ()
    gone: bool = False


@dataclass(frozen=True)
class ResourcePlan:
    """What a pass with apply off found: each part's report, and every change it would make."""

    reports: tuple[PartReport, ...]
    changes: tuple[Change, ...]

    @property
    def summary(self) -> str:
        return plan_summary(self.changes)


# Planned-change Events posted when a dry-run plan changes; the rest are in status.plan.
MAX_PLAN_EVENTS: Final = 20


def format_validation_error(error: ValidationError) -> str:
    """`field.path: message; ...` without the offending input values."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        parts.append(f"spec.{where}: {item['msg']}" if where != "spec" else f"spec: {item['msg']}")
    return "; ".join(parts)


def _created(meta: Mapping[str, Any]) -> datetime | None:
    stamp = meta.get("creationTimestamp")
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


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

    def reconcile(self, namespace: str, name: str) -> ReconcileResult:
        """One full pass over the resource `namespace/name`."""
        body = self.kube.get(LOKIFI_STORAGES, namespace, name)
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
            return self._finish(owner, stored, desired, [], Outcome.INVALID, now)

        apply = not spec.dryRun
        secrets = SecretReader(self.kube, namespace)
        reports, dropped = self._run_parts(
            owner, spec, now, current, _created(meta), apply, secrets
        )
        runs = self._job_runs(owner, spec, secrets)
        reports = [
            dataclasses.replace(r, condition=overlay_job_runs(r.condition, runs)) for r in reports
        ]
        actions = [action for report in reports for action in report.actions]
        if apply:
            self.config.fence.check(f"writing the objects of {namespace}/{name}")
        reports, owned_actions, blocks = self._sync_owned(owner, spec, reports, current, apply)
        actions += owned_actions
        plan_events: list[EventSpec] = []
        if apply:
            dropped.append("plan")
        else:
            reports, plan, plan_events = _dry_run(reports, generation, current)
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
        return self._finish(owner, stored, desired, actions, _outcome(desired), now, plan_events)

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
            owner, spec, self._clock(), current, _created(meta), False, secrets
        )
        if owned:
            reports, _, _ = self._sync_owned(owner, spec, reports, current, False)
        changes = tuple(change for report in reports for change in report.planned)
        return ResourcePlan(reports=tuple(reports), changes=changes)

    def clean_up(self, namespace: str, name: str) -> list[str]:
        """deletionPolicy Delete: each part removes what the operator created.

        Raises CleanupIncompleteError naming every part that could not finish; the caller
        retries and the finalizer keeps the resource until then.
        """
        body = self.kube.get(LOKIFI_STORAGES, namespace, name)
        if body is None:
            return []
        owner = Owner(namespace=namespace, name=name, uid=body["metadata"]["uid"])
        try:
            spec = LokifiStorageSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return []  # an unreadable spec cannot say what to remove: remove nothing
        now = self._clock()
        ctx = PartContext(
            spec=spec,
            namespace=namespace,
            name=name,
            uid=owner.uid,
            secrets=SecretReader(self.kube, namespace),
            now=now,
            memory=self._memory(owner.uid),
            status=read_status(body.get("status") or {}),
            created=_created(body["metadata"]),
        )
        actions, failures = clean_up_parts(self.parts, ctx)
        events = [EventSpec("Normal", Reason.CLEANED_UP, action) for action in actions]
        events += [EventSpec("Warning", Reason.CLEANUP_FAILED, failure) for failure in failures]
        self._post(owner, events, now)
        if failures:
            raise CleanupIncompleteError("; ".join(failures))
        return actions

    def release(self, body: Mapping[str, Any]) -> list[str]:
        """The resource is gone: give up the claims it held on shared things (Redis settings,
        lifecycle rules, tables), so another resource may manage them. Best effort; a claim
        that cannot be released now is named in the log (docs/operations.md says how to
        remove it by hand)."""
        plain = _plain(body)
        meta = plain.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        try:
            spec = LokifiStorageSpec.model_validate(plain.get("spec") or {})
        except ValidationError:
            return []
        ctx = PartContext(
            spec=spec,
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid", "")),
            secrets=SecretReader(self.kube, namespace),
            now=self._clock(),
            status=read_status(plain.get("status") or {}),
        )
        released, failures = release_parts(self.parts, ctx)
        for line in released:
            log.info("%s/%s deleted: %s", namespace, name, line)
        for failure in failures:
            log.warning("%s/%s deleted, claims not released: %s", namespace, name, failure)
        return released

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
            fence=self.config.fence,
            at=now if self._explicit_clock else None,
        )
        if len(declared) <= 1:
            return [r for p in declared for r in _timed_run(p, ctx)], dropped
        reports: list[PartReport] = []
        pool = ThreadPoolExecutor(max_workers=len(declared), thread_name_prefix="part")
        try:
            futures = [(p, pool.submit(_timed_run, p, ctx)) for p in declared]
            deadline = self.config.part_timeout_seconds
            for part, future in futures:
                try:
                    reports += future.result(timeout=deadline)
                except FutureTimeout:
                    reports += failed_reports(
                        part,
                        Reason.PART_FAILED,
                        f"{part.name} did not finish within {deadline:.0f}s",
                    )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return reports, dropped

    def _sync_owned(
        self,
        owner: Owner,
        spec: LokifiStorageSpec,
        reports: list[PartReport],
        current: LokifiStorageStatus,
        apply: bool = True,
    ) -> tuple[list[PartReport], list[str], LokifiStorageStatus]:
        """Write the connection Secret and CronJobs; a refusal becomes a part's condition.

        Returns the reports, the actions taken and the status of the owned objects (its
        connectionSecret block set when there is one to write).
        With apply off the writes they would make are added to the reports' `planned`
        (the Secret's to PostgresReady's report, the CronJobs' to BackupsReady's or, without
        backups, PostgresReady's).
        """
        actions: list[str] = []
        blocks = LokifiStorageStatus()
        data = build_connection_secret_data(*(r.secret_data for r in reports))
        recorded = current.connectionSecret.name if current.connectionSecret else None
        try:
            secret = sync_connection_secret(self.kube, owner, spec, data, recorded, apply=apply)
        except OwnedObjectRefusedError as refused:
            reports = _override(reports, types.POSTGRES_READY, refused)
        else:
            actions += secret.actions
            reports = _add_planned(reports, (types.POSTGRES_READY,), secret.planned)
            if secret.status is not None:
                blocks = LokifiStorageStatus(connectionSecret=secret.status)
        try:
            cronjobs = plan_or_sync_cronjobs(
                self.kube, owner, spec, self.config.job_settings, apply=apply
            )
        except OwnedObjectRefusedError as refused:
            reports = _override(reports, types.BACKUPS_READY, refused)
        else:
            actions += cronjobs.actions
            kinds = (types.BACKUPS_READY, types.POSTGRES_READY)
            reports = _add_planned(reports, kinds, cronjobs.planned)
        return reports, actions, blocks

    def _finish(
        self,
        owner: Owner,
        stored: Mapping[str, Any],
        desired_status: LokifiStorageStatus,
        actions: list[str],
        outcome: Outcome,
        now: datetime,
        plan_events: Sequence[EventSpec] = (),
    ) -> ReconcileResult:
        """Patch what differs of `stored` (`.status` as read), post the Events, set metrics."""
        self.config.fence.check(f"writing the status of {owner.namespace}/{owner.name}")
        desired = status_json(desired_status)
        patch = status_patch(stored, desired)
        memory = self._memory(owner.uid)
        if patch and memory.get("last_status") == (desired, stored):
            # The API server stored something else than what was sent last time, and would
            # again: re-sending would write on every resync without ever converging. Only
            # fields missing from what it stored mean a CRD that prunes them (older than the
            # operator); the desired status carries no null, so that is not a false alarm.
            dropped = dropped_fields({k: desired[k] for k in patch if k in desired}, stored)
            if dropped and not memory.get("pruning_reported"):
                log.warning(
                    "%s/%s: the API server drops status fields %s: the CRD is older than the "
                    "operator; apply crds/lokifistorage.yaml of this version",
                    owner.namespace,
                    owner.name,
                    ", ".join(dropped[:10]),
                )
                memory["pruning_reported"] = True
            patch = {}
        if patch:
            written = self.kube.patch_status(LOKIFI_STORAGES, owner.namespace, owner.name, patch)
            if written is not None:
                memory["last_status"] = (desired, written.get("status") or {})
        events = [EventSpec("Normal", Reason.RECONCILED, action) for action in actions]
        events += condition_events(read_status(stored).conditions, desired_status.conditions)
        events += plan_events
        self._post(owner, events, now)
        metrics.record_status(owner.namespace, owner.name, desired_status)
        ready = next((c for c in desired_status.conditions if c.type == types.READY), None)
        return ReconcileResult(
            outcome=outcome,
            ready_message=ready.message if ready else "",
            status_patched=bool(patch),
            actions=tuple(actions),
            events=tuple(events),
        )

    def _post(self, owner: Owner, events: Sequence[EventSpec], now: datetime) -> None:
        about = ObjectRef(
            api_version=API_VERSION,
            kind=KIND,
            namespace=owner.namespace,
            name=owner.name,
            uid=owner.uid,
        )
        for event in events:
            try:
                self.kube.post_event(
                    about,
                    event.type,
                    event.reason,
                    event.message,
                    component=COMPONENT,
                    instance=self.config.instance,
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


def _plain(value: Any) -> Any:
    """Kopf's mapping views as plain dicts and lists, as the models expect."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _outcome(status: LokifiStorageStatus) -> Outcome:
    """Ready; stalled (only a human can help, nothing to retry); or not ready (retry soon)."""
    if _is_true(status, types.READY):
        return Outcome.READY
    if _is_true(status, types.STALLED) and not _is_true(status, types.RECONCILING):
        return Outcome.STALLED
    return Outcome.NOT_READY


def _timed_run(part: Part, ctx: PartContext) -> list[PartReport]:
    """run_part, with its duration and outcome recorded in the metrics."""
    started = time.monotonic()
    reports = run_part(part, ctx)
    failing = [r.condition for r in reports if r.condition.status != "True"]
    metrics.observe_part(
        ctx.namespace,
        ctx.name,
        part.name,
        time.monotonic() - started,
        ok=not failing,
        reason=failing[0].reason if failing else None,
    )
    return reports


def _override(
    reports: list[PartReport], kind: str, refused: OwnedObjectRefusedError
) -> list[PartReport]:
    """Replace (or add) the condition `kind` with the refusal."""
    refusal = failed(kind, refused.reason, refused.message)
    out = [r for r in reports if r.condition.type != kind]
    kept = [r for r in reports if r.condition.type == kind]
    status = kept[0].status if kept else LokifiStorageStatus()
    return [*out, PartReport(condition=refusal, status=status)]


def _add_planned(
    reports: list[PartReport], kinds: Sequence[str], planned: Sequence[Change]
) -> list[PartReport]:
    """Add `planned` to the report of the first condition of `kinds` present (else to the
    first report: the changes are listed even when their part timed out)."""
    if not planned or not reports:
        return reports
    kinds_present = [r.condition.type for r in reports]
    kind = next((k for k in kinds if k in kinds_present), kinds_present[0])
    index = kinds_present.index(kind)
    updated = replace(reports[index], planned=[*reports[index].planned, *planned])
    return [*reports[:index], updated, *reports[index + 1 :]]


def _dry_run(
    reports: list[PartReport], generation: int | None, current: LokifiStorageStatus
) -> tuple[list[PartReport], PlanStatus, list[EventSpec]]:
    """Dry-run reports: a part with changes pending reads False/DryRun (unless it already
    failed for its own reason); status.plan; and Events when the plan differs from the one in
    status (a steady dry-run posts nothing)."""
    changes = [change for report in reports for change in report.planned]
    out: list[PartReport] = []
    for report in reports:
        pending = report.condition.status == "True" or report.condition.reason == Reason.PROGRESSING
        if report.planned and pending:
            first = "; ".join(c.describe() for c in report.planned[:3])
            more = f" and {len(report.planned) - 3} more" if len(report.planned) > 3 else ""
            condition = failed(
                report.condition.type,
                Reason.DRY_RUN,
                f"dry run: {len(report.planned)} change(s) planned, none applied: {first}{more}",
            )
            report = replace(report, condition=condition)
        out.append(report)
    block = PlanStatus.model_validate(plan_status(changes, generation))
    events: list[EventSpec] = []
    if current.plan != block:
        events.append(EventSpec("Normal", Reason.DRY_RUN, f"dry run: {block.summary}"))
        events += [
            EventSpec("Normal", Reason.PLANNED, f"would {change.describe()}")
            for change in sorted(changes, key=lambda c: (c.part, c.target))[:MAX_PLAN_EVENTS]
        ]
    return out, block, events
