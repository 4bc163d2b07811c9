"""Who manages each lifecycle rule of a bucket: the claims recorded as bucket tags.

Each declared rule id of a bucket has one owner (domain/claims.py), recorded as the bucket tag
`lokifi-storage/rule/<id>` = `<uid> <ns>/<name>`. A rule id another resource owns, declared with
other content than the bucket holds, is a conflict and nothing is written to that bucket; the
same content is shared. Kept apart from reconcile/object_storage.py, which decides the rules
themselves, because the claims are also what a deleted resource gives up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from lokifi_storage.api.spec import BucketSpec, ObjectStorageSpec
from lokifi_storage.clients.s3 import (
    S3Client,
    bucket_exists,
    get_bucket_tags,
    make_reconcile_client,
    put_bucket_tags,
    writes_under,
)
from lokifi_storage.domain.claims import Claim, Claimant, Verdict, digest, judge
from lokifi_storage.domain.lifecycle import canonical_rule, render_rule

__all__ = [
    "RULE_TAG_PREFIX",
    "Settled",
    "release_lifecycle_claims",
    "rule_tag",
    "settle_rule_claims",
]

RULE_TAG_PREFIX = "lokifi-storage/rule/"
_TAG_SAFE = re.compile(r"^[A-Za-z0-9 +\-=._:/@]{1,100}$")


def rule_tag(rule_id: str) -> str:
    """The bucket tag key recording who manages the rule `rule_id` (a digest for an id a tag
    key cannot hold)."""
    return RULE_TAG_PREFIX + (rule_id if _TAG_SAFE.match(rule_id) else "sha-" + digest(rule_id))


@dataclass
class Settled:
    conflicts: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    retirable: list[str] = field(default_factory=list)


def settle_rule_claims(
    client: S3Client,
    bucket: BucketSpec,
    current: list[dict[str, object]],
    previously_managed: Collection[str],
    claimant: Claimant,
    *,
    apply: bool = True,
) -> Settled:
    """Check the claims of the declared rule ids; record new ones, release retired ones.
    Writes nothing (not even a tag) when one of them conflicts, or without `apply`."""
    tags = get_bucket_tags(client, bucket.name)
    live = {str(rule.get("ID")): rule for rule in current if rule.get("ID")}
    settled = Settled()
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
    before_write: Callable[[str], None] | None = None,
) -> list[str]:
    """Remove `claimant`'s rule claims from every declared bucket (the rules stay), each
    change asking `before_write` first."""
    s3 = client or make_reconcile_client(spec.endpoint, spec.region, access_key, secret_key)
    with writes_under(s3, before_write):
        return _release(s3, spec, claimant)


def _release(s3: S3Client, spec: ObjectStorageSpec, claimant: Claimant) -> list[str]:
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
