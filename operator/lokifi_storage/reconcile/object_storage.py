"""S3 lifecycle: per bucket, check it exists, merge the declared rules, PUT only on a difference.

observe (HeadBucket, GetBucketLifecycleConfiguration) -> plan (domain/lifecycle.py) -> apply
(CreateBucket only with `create: true`; PutBucketLifecycleConfiguration or DeleteBucketLifecycle
only when the merged document differs) -> report (ObjectStorageReady, status.objectStorage, the
S3_BUCKET_<NAME> keys of the connection Secret).

With apply off (`lokifi-storage plan`, spec.dryRun) the bucket creation and the lifecycle write
are reported as planned changes (rules added, changed, removed, kept) and not made; status keeps
the rules managed so far, since nothing was written.

The operator manages only the rules whose ids the spec declares; every other rule of a bucket
is kept as it is and counted in status (foreignRules). The credentials come in as parameters;
the handler reads them from the Secret spec.objectStorage.credentialsSecretRef names.

With a `claimant` (the resource), each declared rule id of a bucket has one owner
(domain/claims.py), recorded as the bucket tag `lokifi-storage/rule/<id>` = `<uid> <ns>/<name>`.
A rule id another resource owns, declared here with other content than the bucket holds, is a
Conflict naming the owner, and nothing is written to that bucket by this resource; the same
content is shared. A rule another resource owns is never retired from here. The claims are kept
in reconcile/lifecycle_claims.py, which a deleted resource's release uses too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from lokifi_storage.api import conditions
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import BucketSpec, LokifiStorageSpec, ObjectStorageSpec
from lokifi_storage.api.status import (
    BucketStatus,
    Condition,
    LokifiStorageStatus,
    ObjectStorageStatus,
    failed,
    ready,
)
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.s3 import (
    LifecycleDocument,
    S3Client,
    bucket_exists,
    create_bucket,
    delete_lifecycle,
    get_lifecycle,
    make_reconcile_client,
    put_lifecycle,
    writes_under,
)
from lokifi_storage.domain.change_plan import Change, FieldChange
from lokifi_storage.domain.claims import Claimant
from lokifi_storage.domain.connection_secret import SecretKeyCollisionError, bucket_entries
from lokifi_storage.domain.lifecycle import LifecyclePlan, plan_lifecycle
from lokifi_storage.reconcile.fence import LeadershipLost
from lokifi_storage.reconcile.lifecycle_claims import (
    release_lifecycle_claims,
    settle_rule_claims,
)
from lokifi_storage.reconcile.parts import Part, PartContext, claimant_of, s3_credentials
from lokifi_storage.reconcile.report import PartReport

__all__ = ["PART", "ObjectStoragePart", "managed_rules", "reconcile_object_storage"]

# When several things are wrong, the condition's reason is the one that explains the most.
_PRIORITY = (
    Reason.ENDPOINT_UNREACHABLE,
    Reason.ACCESS_DENIED,
    Reason.INVALID_SPEC,
    Reason.BUCKET_NOT_FOUND,
    Reason.CONFLICT,
    Reason.INVALID_LIFECYCLE,
)


@dataclass
class _Pass:
    problems: list[tuple[str, str]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    buckets: list[BucketStatus] = field(default_factory=list)
    foreign_kept: int = 0
    apply: bool = True
    planned: list[Change] = field(default_factory=list)


def _lifecycle_change(plan: LifecyclePlan) -> Change:
    """The lifecycle write as a planned change: a field per rule added, changed, removed, kept."""
    fields = [FieldChange(f"rule {rule_id}", None, "added") for rule_id in plan.added]
    fields += [
        FieldChange(f"rule {rule_id}", "declared before", "changed") for rule_id in plan.replaced
    ]
    fields += [FieldChange(f"rule {rule_id}", "managed", None) for rule_id in plan.removed]
    fields += [FieldChange(f"rule {rule_id}", "kept", "kept") for rule_id in plan.foreign]
    return Change(
        "objectStorage",
        plan.bucket,
        "update" if plan.write == "put" else "delete",
        f"update {plan.describe()}",
        tuple(fields),
    )


def _reconcile_bucket(
    client: S3Client,
    bucket: BucketSpec,
    region: str,
    previously_managed: Collection[str],
    found: _Pass,
    claimant: Claimant | None = None,
) -> None:
    if not bucket_exists(client, bucket.name):
        if not bucket.create:
            found.problems.append(
                (
                    Reason.BUCKET_NOT_FOUND,
                    f"bucket {bucket.name} does not exist (create it, or set create: true)",
                )
            )
            found.buckets.append(
                BucketStatus(name=bucket.name, exists=False, reason=Reason.BUCKET_NOT_FOUND)
            )
            return
        if found.apply:
            create_bucket(client, bucket.name, region)
            found.actions.append(f"created bucket {bucket.name}")
        else:
            found.planned.append(
                Change("objectStorage", bucket.name, "create", f"create bucket {bucket.name}")
            )
            missing = plan_lifecycle(bucket.name, bucket.lifecycle, [], previously_managed)
            if missing.write is not None:
                found.planned.append(_lifecycle_change(missing))
            found.buckets.append(BucketStatus(name=bucket.name, exists=False))
            return

    if not bucket.lifecycle and not previously_managed:
        found.buckets.append(BucketStatus(name=bucket.name, exists=True))
        return

    current = get_lifecycle(client, bucket.name)
    if claimant is not None:
        settled = settle_rule_claims(
            client, bucket, current.rules, previously_managed, claimant, apply=found.apply
        )
        if settled.conflicts:
            found.problems.append((Reason.CONFLICT, "; ".join(settled.conflicts)))
            found.buckets.append(
                BucketStatus(
                    name=bucket.name,
                    exists=True,
                    managedRules=list(previously_managed),
                    reason=Reason.CONFLICT,
                )
            )
            return
        previously_managed = settled.retirable
        found.actions += settled.actions
    plan = plan_lifecycle(bucket.name, bucket.lifecycle, current.rules, previously_managed)
    if not found.apply and not plan.problems:
        if plan.write is not None:
            found.planned.append(_lifecycle_change(plan))
        found.foreign_kept += len(plan.foreign)
        found.buckets.append(
            BucketStatus(
                name=bucket.name,
                exists=True,
                managedRules=list(previously_managed) if plan.write else plan.managed,
                foreignRules=len(plan.foreign),
            )
        )
        return
    found.foreign_kept += len(plan.foreign)
    status = BucketStatus(
        name=bucket.name,
        exists=True,
        # Nothing is written when the plan has problems: what the operator manages is unchanged.
        managedRules=list(previously_managed) if plan.problems else plan.managed,
        foreignRules=len(plan.foreign),
    )
    if plan.problems:
        found.problems.append((Reason.INVALID_LIFECYCLE, "; ".join(plan.problems)))
        found.buckets.append(status.model_copy(update={"reason": Reason.INVALID_LIFECYCLE}))
        return
    if plan.write == "put":
        put_lifecycle(client, bucket.name, LifecycleDocument(plan.rules, current.options))
        found.actions.append(plan.describe())
    elif plan.write == "delete":
        delete_lifecycle(client, bucket.name)
        found.actions.append(plan.describe())
    found.buckets.append(status)


def _condition(spec: ObjectStorageSpec, found: _Pass) -> Condition:
    if found.problems:
        reasons = [reason for reason, _ in found.problems]
        reason = min(reasons, key=lambda r: _PRIORITY.index(r) if r in _PRIORITY else 99)
        return failed(
            conditions.OBJECT_STORAGE_READY,
            reason,
            "; ".join(message for _, message in found.problems),
        )
    kept = (
        f"; {found.foreign_kept} rule(s) not managed by the operator kept"
        if found.foreign_kept
        else ""
    )
    return ready(
        conditions.OBJECT_STORAGE_READY,
        f"{len(spec.buckets)} bucket(s) present, lifecycle rules current{kept}",
    )


def reconcile_object_storage(
    spec: ObjectStorageSpec,
    access_key: str | None,
    secret_key: str | None,
    *,
    previously_managed: Mapping[str, Collection[str]] | None = None,
    client: S3Client | None = None,
    apply: bool = True,
    claimant: Claimant | None = None,
    before_write: Callable[[str], None] | None = None,
) -> PartReport:
    """One pass over every bucket. `previously_managed` is status.objectStorage's
    `managedRules` per bucket from the last pass; pass `client` to count its requests;
    `apply=False` writes nothing and returns what it would write as `planned`;
    `claimant` to take part in the claims of rule ids (the operator always does);
    `before_write` (the leader's fence) is asked before each S3 call that changes something,
    and raising LeadershipLost there ends the pass with nothing more sent."""
    s3 = (
        client
        if client is not None
        else make_reconcile_client(spec.endpoint, spec.region, access_key, secret_key)
    )
    managed_before = previously_managed or {}
    found = _Pass(apply=apply)
    secret_data: dict[str, str] = {}
    try:
        secret_data = bucket_entries(bucket.name for bucket in spec.buckets)
    except SecretKeyCollisionError as error:
        found.problems.append((Reason.INVALID_SPEC, str(error)))

    with writes_under(s3, before_write):
        _reconcile_buckets(s3, spec, managed_before, found, claimant)
    return PartReport(
        condition=_condition(spec, found),
        status=LokifiStorageStatus(objectStorage=ObjectStorageStatus(buckets=found.buckets)),
        actions=found.actions,
        secret_data=secret_data,
        planned=found.planned,
    )


def _reconcile_buckets(
    s3: S3Client,
    spec: ObjectStorageSpec,
    managed_before: Mapping[str, Collection[str]],
    found: _Pass,
    claimant: Claimant | None,
) -> None:
    for index, bucket in enumerate(spec.buckets):
        try:
            _reconcile_bucket(
                s3, bucket, spec.region, managed_before.get(bucket.name, ()), found, claimant
            )
        except LeadershipLost:
            raise
        except ClientError as error:
            found.problems.append((error.reason, error.message))
            found.buckets.append(
                BucketStatus(
                    name=bucket.name,
                    managedRules=list(managed_before.get(bucket.name, ())),
                    reason=error.reason,
                )
            )
            if error.reason in (Reason.ENDPOINT_UNREACHABLE, Reason.ACCESS_DENIED):
                # The same endpoint and keys serve every bucket: one timeout (or refusal) each
                # for the rest would say nothing new.
                for rest in spec.buckets[index + 1 :]:
                    found.buckets.append(
                        BucketStatus(
                            name=rest.name,
                            managedRules=list(managed_before.get(rest.name, ())),
                            reason=error.reason,
                        )
                    )
                break


def managed_rules(status: LokifiStorageStatus) -> dict[str, list[str]]:
    """status.objectStorage's managedRules per bucket: what the last pass managed."""
    buckets = status.objectStorage.buckets if status.objectStorage is not None else []
    return {bucket.name: list(bucket.managedRules) for bucket in buckets}


class ObjectStoragePart:
    """spec.objectStorage: ObjectStorageReady, status.objectStorage, the S3_BUCKET_* keys."""

    name = "object-storage"
    conditions = (conditions.OBJECT_STORAGE_READY,)
    status_keys = ("objectStorage",)

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return spec.objectStorage is not None and bool(spec.objectStorage.buckets)

    def run(self, ctx: PartContext) -> list[PartReport]:
        storage = ctx.spec.objectStorage
        assert storage is not None
        access_key, secret_key = s3_credentials(ctx)
        report = reconcile_object_storage(
            storage,
            access_key,
            secret_key,
            previously_managed=managed_rules(ctx.status),
            apply=ctx.apply,
            claimant=claimant_of(ctx),
            before_write=ctx.fence.check,
        )
        return [report]

    def cleanup(self, ctx: PartContext) -> list[str]:
        """Remove the lifecycle rules the operator set; every other rule of the bucket stays.

        Declaring no rules for a bucket whose rules the operator managed is exactly what makes
        the part retire them, so the cleanup is one more pass with empty lifecycles.
        """
        storage = ctx.spec.objectStorage
        assert storage is not None
        access_key, secret_key = s3_credentials(ctx)
        managed = managed_rules(ctx.status)
        for bucket in storage.buckets:
            managed[bucket.name] = sorted(
                {*managed.get(bucket.name, []), *(r.id for r in bucket.lifecycle)}
            )
        emptied = storage.model_copy(
            update={
                "buckets": [
                    b.model_copy(update={"lifecycle": [], "create": False}) for b in storage.buckets
                ]
            }
        )
        report = reconcile_object_storage(
            emptied,
            access_key,
            secret_key,
            previously_managed=managed,
            claimant=claimant_of(ctx),
            before_write=ctx.fence.check,
        )
        if report.condition.status != "True":
            raise ClientError(report.condition.message, reason=report.condition.reason)
        return list(report.actions)

    def release(self, ctx: PartContext) -> list[str]:
        storage = ctx.spec.objectStorage
        assert storage is not None
        access_key, secret_key = s3_credentials(ctx)
        return release_lifecycle_claims(
            storage, access_key, secret_key, claimant_of(ctx), before_write=ctx.fence.check
        )


PART: Part = ObjectStoragePart()
