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
content is shared. A rule another resource owns is never retired from here.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from lokifi_storage.api import conditions
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import BucketSpec, ObjectStorageSpec
from lokifi_storage.api.status import BucketStatus, Condition, ObjectStorageStatus
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.s3 import (
    LifecycleDocument,
    S3Client,
    bucket_exists,
    create_bucket,
    delete_lifecycle,
    get_bucket_tags,
    get_lifecycle,
    make_reconcile_client,
    put_bucket_tags,
    put_lifecycle,
)
from lokifi_storage.domain.change_plan import Change, FieldChange
from lokifi_storage.domain.claims import Claim, Claimant, Verdict, digest, judge
from lokifi_storage.domain.connection_secret import SecretKeyCollisionError, bucket_entries
from lokifi_storage.domain.lifecycle import (
    LifecyclePlan,
    canonical_rule,
    plan_lifecycle,
    render_rule,
)
from lokifi_storage.reconcile.report import PartReport

__all__ = ["reconcile_object_storage", "release_lifecycle_claims", "rule_tag"]

RULE_TAG_PREFIX = "lokifi-storage/rule/"
_TAG_SAFE = re.compile(r"^[A-Za-z0-9 +\-=._:/@]{1,100}$")


def rule_tag(rule_id: str) -> str:
    """The bucket tag key recording who manages the rule `rule_id` (a digest for an id a tag
    key cannot hold)."""
    return RULE_TAG_PREFIX + (rule_id if _TAG_SAFE.match(rule_id) else "sha-" + digest(rule_id))


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


@dataclass
class _Settled:
    conflicts: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    retirable: list[str] = field(default_factory=list)


def _settle_rule_claims(
    client: S3Client,
    bucket: BucketSpec,
    current: list[dict[str, object]],
    previously_managed: Collection[str],
    claimant: Claimant,
    *,
    apply: bool = True,
) -> _Settled:
    """Check the claims of the declared rule ids; record new ones, release retired ones.
    Writes nothing (not even a tag) when one of them conflicts, or without `apply`."""
    tags = get_bucket_tags(client, bucket.name)
    live = {str(rule.get("ID")): rule for rule in current if rule.get("ID")}
    settled = _Settled()
    wanted = dict(tags)
    for rule in bucket.lifecycle:
        key = rule_tag(rule.id)
        claim = Claim.from_tag(tags.get(key))
        same = rule.id in live and canonical_rule(live[rule.id]) == canonical_rule(
            render_rule(rule)
        )
        verdict = judge(claimant, claim, same)
        if verdict is Verdict.CONFLICT and claim is not None:
            settled.conflicts.append(
                f"lifecycle rule {rule.id} of bucket {bucket.name} is managed by {claim.owner} "
                "with other content; this resource changes nothing on the bucket (make the "
                f"rules equal, or remove it from one of the two; claim: bucket tag {key})"
            )
        elif verdict is Verdict.FREE:
            wanted[key] = claimant.claim().tag()
    declared = {rule.id for rule in bucket.lifecycle}
    for rule_id in previously_managed:
        if rule_id in declared:
            continue
        claim = Claim.from_tag(tags.get(rule_tag(rule_id)))
        if claim is None or claim.uid == claimant.uid:
            settled.retirable.append(rule_id)
            wanted.pop(rule_tag(rule_id), None)
    if settled.conflicts:
        return settled
    settled.retirable += sorted(declared & set(previously_managed))
    if wanted != tags and apply:
        put_bucket_tags(client, bucket.name, wanted)
        added = sorted(set(wanted) - set(tags))
        removed = sorted(set(tags) - set(wanted))
        settled.actions.append(
            f"bucket {bucket.name}: lifecycle rule claims"
            + (
                f" recorded {', '.join(k.removeprefix(RULE_TAG_PREFIX) for k in added)}"
                if added
                else ""
            )
            + (
                f" released {', '.join(k.removeprefix(RULE_TAG_PREFIX) for k in removed)}"
                if removed
                else ""
            )
        )
    return settled


def release_lifecycle_claims(
    spec: ObjectStorageSpec,
    access_key: str | None,
    secret_key: str | None,
    claimant: Claimant,
    *,
    client: S3Client | None = None,
) -> list[str]:
    """Remove `claimant`'s rule claims from every declared bucket (the rules stay)."""
    s3 = client or make_reconcile_client(spec.endpoint, spec.region, access_key, secret_key)
    released: list[str] = []
    for bucket in spec.buckets:
        if not bucket_exists(s3, bucket.name):
            continue
        tags = get_bucket_tags(s3, bucket.name)
        ours = [
            key
            for key, value in tags.items()
            if key.startswith(RULE_TAG_PREFIX)
            and (claim := Claim.from_tag(value)) is not None
            and claim.uid == claimant.uid
        ]
        if ours:
            put_bucket_tags(s3, bucket.name, {k: v for k, v in tags.items() if k not in ours})
            released.append(
                f"bucket {bucket.name}: released lifecycle rule claims "
                + ", ".join(k.removeprefix(RULE_TAG_PREFIX) for k in ours)
            )
    return released


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
        settled = _settle_rule_claims(
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
        return Condition(
            type=conditions.OBJECT_STORAGE_READY,
            status="False",
            reason=reason,
            message="; ".join(message for _, message in found.problems),
        )
    kept = (
        f"; {found.foreign_kept} rule(s) not managed by the operator kept"
        if found.foreign_kept
        else ""
    )
    return Condition(
        type=conditions.OBJECT_STORAGE_READY,
        status="True",
        reason=Reason.RECONCILED,
        message=f"{len(spec.buckets)} bucket(s) present, lifecycle rules current{kept}",
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
) -> PartReport:
    """One pass over every bucket. `previously_managed` is status.objectStorage's
    `managedRules` per bucket from the last pass; pass `client` to count its requests;
    `apply=False` writes nothing and returns what it would write as `planned`;
    `claimant` to take part in the claims of rule ids (the operator always does)."""
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

    for index, bucket in enumerate(spec.buckets):
        try:
            _reconcile_bucket(
                s3, bucket, spec.region, managed_before.get(bucket.name, ()), found, claimant
            )
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

    status = ObjectStorageStatus(buckets=found.buckets)
    return PartReport(
        condition=_condition(spec, found),
        status={"objectStorage": status.model_dump(exclude_none=True)},
        actions=found.actions,
        secret_data=secret_data,
        planned=found.planned,
    )
