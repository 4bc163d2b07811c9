"""The `spec.objectStorage` and `spec.backups` parts: buckets, lifecycle rules, backup schedules.

Lifecycle rules are checked against what S3's PutBucketLifecycleConfiguration itself refuses,
so a bad rule is reported on `kubectl apply` instead of as a failed reconcile later:
- a transition goes to STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER or
  DEEP_ARCHIVE, never to STANDARD;
- transitions to STANDARD_IA or ONEZONE_IA need at least 30 days (objects must stay 30 days in
  STANDARD first);
- after a transition to STANDARD_IA or ONEZONE_IA, the next transition is at least 30 days
  later (the minimum stay in the IA classes);
- transitions follow S3's supported waterfall STANDARD_IA > INTELLIGENT_TIERING > ONEZONE_IA >
  GLACIER_IR > GLACIER > DEEP_ARCHIVE (and ONEZONE_IA cannot go to GLACIER_IR), in strictly
  increasing days;
- expiration comes after the last transition; a rule has at least one action;
- at most 1000 rules per bucket, ids unique.
The 90/180-day minimum storage durations of GLACIER_IR/GLACIER/DEEP_ARCHIVE are billing rules
(an early-deletion charge), not refusals, so they are not checked.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Final

from pydantic import ConfigDict, Field, field_validator, model_validator

from lokifi_storage.api.names import BucketName, DnsLabel
from lokifi_storage.api.spec_base import (
    Compression,
    Schedule,
    SecretKeyRef,
    SecretRef,
    SpecModel,
    StorageClass,
    TransitionStorageClass,
    cel,
    cel_rules,
    duplicates,
    list_map,
    spec_error,
)

MAX_LIFECYCLE_RULES: Final = 1000  # S3's limit per bucket, declared and foreign rules together
# Bounds of the spec itself. The API server multiplies the cost of every CEL rule on a rule by
# buckets x rules; at 100 x 1000 the transition-order rules exceed its budget 30-fold.
MAX_DECLARED_RULES: Final = 100
MAX_BUCKETS: Final = 20
MAX_SCHEDULES: Final = 16
IA_CLASSES: Final = ("STANDARD_IA", "ONEZONE_IA")
IA_MINIMUM_DAYS: Final = 30
# S3's lifecycle waterfall: a transition may only go further down this list.
TRANSITION_ORDER: Final = (
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ONEZONE_IA",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
)
UNSUPPORTED_TRANSITIONS: Final = frozenset({("ONEZONE_IA", "GLACIER_IR")})

_RANK: Final = "{" + ", ".join(f"'{c}': {i}" for i, c in enumerate(TRANSITION_ORDER)) + "}"
_IA: Final = "[" + ", ".join(f"'{c}'" for c in IA_CLASSES) + "]"


class TransitionSpec(SpecModel):
    """Move objects to another storage class some days after they were created."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel(
                f"!(self.storageClass in {_IA}) || self.afterDays >= {IA_MINIMUM_DAYS}",
                "S3 refuses transitions to STANDARD_IA or ONEZONE_IA before 30 days: set "
                "afterDays to 30 or more",
                field_path=".afterDays",
            ),
        )
    )

    afterDays: int = Field(
        ge=0, le=36500, description="Days after creation; at least 30 for STANDARD_IA/ONEZONE_IA."
    )
    storageClass: TransitionStorageClass = Field(description="Target storage class.")

    @model_validator(mode="after")
    def _ia_minimum(self) -> TransitionSpec:
        if self.storageClass in IA_CLASSES and self.afterDays < IA_MINIMUM_DAYS:
            raise spec_error(
                "afterDays ({days}) is too early for {cls}: S3 refuses transitions to "
                "STANDARD_IA or ONEZONE_IA before 30 days; set afterDays to 30 or more",
                days=self.afterDays,
                cls=self.storageClass,
            )
        return self


def transition_problems(transitions: list[TransitionSpec]) -> list[str]:
    """What S3 would refuse about this sequence of transitions of one rule."""
    problems: list[str] = []
    for i, (first, then) in enumerate(itertools.pairwise(transitions)):
        where = f"transitions[{i + 1}]"
        if then.afterDays <= first.afterDays:
            problems.append(
                f"{where}.afterDays ({then.afterDays}) must be greater than the previous "
                f"transition's ({first.afterDays}); list transitions in increasing days"
            )
            continue
        order = TRANSITION_ORDER.index
        if order(then.storageClass) <= order(first.storageClass) or (
            (first.storageClass, then.storageClass) in UNSUPPORTED_TRANSITIONS
        ):
            problems.append(
                f"{where}: S3 cannot transition from {first.storageClass} to "
                f"{then.storageClass}; order transitions as {' > '.join(TRANSITION_ORDER)} "
                "(ONEZONE_IA cannot go to GLACIER_IR)"
            )
        if first.storageClass in IA_CLASSES and then.afterDays < first.afterDays + 30:
            problems.append(
                f"{where}.afterDays ({then.afterDays}) must be at least 30 days after the "
                f"transition to {first.storageClass} ({first.afterDays}): objects stay at least "
                f"30 days in {first.storageClass}; set it to {first.afterDays + 30} or more"
            )
    return problems


_RULE_RULES: Final = cel_rules(
    cel(
        "has(self.expirationDays) || has(self.abortIncompleteUploadsAfterDays) || "
        "(has(self.transitions) && size(self.transitions) > 0)",
        "a lifecycle rule needs at least one action: transitions, expirationDays or "
        "abortIncompleteUploadsAfterDays",
    ),
    cel(
        "!has(self.transitions) || (self.transitions.map(t, t.afterDays).isSorted() && "
        "self.transitions.all(a, self.transitions.exists_one(b, b.afterDays == a.afterDays)))",
        "transitions must be listed in strictly increasing afterDays",
        field_path=".transitions",
    ),
    cel(
        f"!has(self.transitions) || self.transitions.all(a, self.transitions.all(b, "
        f"b.afterDays <= a.afterDays || ({_RANK}[b.storageClass] > {_RANK}[a.storageClass] "
        f"&& !(a.storageClass == 'ONEZONE_IA' && b.storageClass == 'GLACIER_IR'))))",
        "S3 only transitions down the chain " + " > ".join(TRANSITION_ORDER) + " "
        "(ONEZONE_IA cannot go to GLACIER_IR); order transitions that way",
        field_path=".transitions",
    ),
    cel(
        f"!has(self.transitions) || self.transitions.all(a, !(a.storageClass in {_IA}) || "
        f"self.transitions.all(b, b.afterDays <= a.afterDays || "
        f"b.afterDays >= a.afterDays + {IA_MINIMUM_DAYS}))",
        "a transition after STANDARD_IA or ONEZONE_IA must come at least 30 days later: "
        "objects stay at least 30 days in the IA classes",
        field_path=".transitions",
    ),
    cel(
        "!has(self.expirationDays) || !has(self.transitions) || "
        "self.transitions.all(t, t.afterDays < self.expirationDays)",
        "expirationDays must be greater than every transition's afterDays",
        field_path=".expirationDays",
    ),
)


class LifecycleRuleSpec(SpecModel):
    """One S3 lifecycle rule, identified by its id. The operator manages only the rules whose
    ids it declares and keeps every other rule of the bucket untouched."""

    model_config = ConfigDict(json_schema_extra=_RULE_RULES)

    id: str = Field(min_length=1, max_length=255, description="Rule id, unique within the bucket.")
    prefix: str = Field(
        default="", max_length=1024, description='Key prefix the rule applies to; "" is all.'
    )
    enabled: bool = Field(default=True, description="Disabled rules are kept but not applied.")
    transitions: list[TransitionSpec] = Field(
        default_factory=list,
        max_length=len(TRANSITION_ORDER),
        description="Storage-class transitions, in strictly increasing afterDays.",
    )
    expirationDays: int | None = Field(
        default=None,
        ge=1,
        description="Objects are deleted this many days after creation; after every transition.",
    )
    abortIncompleteUploadsAfterDays: int | None = Field(
        default=None, ge=1, description="Unfinished multipart uploads are aborted after this."
    )

    @model_validator(mode="after")
    def _s3_accepts(self) -> LifecycleRuleSpec:
        problems = transition_problems(self.transitions)
        if self.expirationDays is not None and self.transitions:
            last = self.transitions[-1].afterDays
            if self.expirationDays <= last:
                problems.append(
                    f"expirationDays ({self.expirationDays}) must be greater than the last "
                    f"transition's afterDays ({last})"
                )
        if (
            not self.transitions
            and self.expirationDays is None
            and self.abortIncompleteUploadsAfterDays is None
        ):
            problems.append(
                "the rule has no action: add transitions, expirationDays or "
                "abortIncompleteUploadsAfterDays"
            )
        if problems:
            raise spec_error(
                "lifecycle rule {id!r}: {problems}", id=self.id, problems="; ".join(problems)
            )
        return self


class BucketSpec(SpecModel):
    """A bucket whose lifecycle rules the operator manages."""

    name: BucketName = Field(description="S3 bucket name; S3_BUCKET_<NAME> in the Secret.")
    create: bool = Field(
        default=False, description="Create the bucket when it does not exist (else report it)."
    )
    lifecycle: Annotated[list[LifecycleRuleSpec], Field(json_schema_extra=list_map("id"))] = Field(
        default_factory=list,
        max_length=MAX_DECLARED_RULES,
        description=f"Lifecycle rules the operator owns, by id; at most {MAX_DECLARED_RULES}.",
    )

    @field_validator("lifecycle")
    @classmethod
    def _unique_ids(cls, rules: list[LifecycleRuleSpec]) -> list[LifecycleRuleSpec]:
        repeated = duplicates(rule.id for rule in rules)
        if repeated:
            raise spec_error(
                "rule id(s) {repeated} used more than once; ids are unique within a bucket",
                repeated=", ".join(repeated),
            )
        return rules


ENDPOINT_USERINFO_MESSAGE: Final = (
    "objectStorage.endpoint must not carry user:password@: it would reach CronJob arguments "
    "and logs; put the keys in the Secret credentialsSecretRef names and write the endpoint "
    "as https://host[:port]"
)
PLAIN_HTTP_MESSAGE: Final = (
    "objectStorage.endpoint is plain http://: every request, backups and exports included, "
    "would travel unencrypted; use https://, or set objectStorage.allowPlainHttp: true for a "
    "loopback or test server"
)
_STORAGE_RULES: Final = cel_rules(
    cel(
        # Any "@": a password holding "/" would hide the userinfo from a URL parser.
        "!has(self.endpoint) || !self.endpoint.contains('@')",
        ENDPOINT_USERINFO_MESSAGE,
        field_path=".endpoint",
    ),
    cel(
        "!has(self.endpoint) || !self.endpoint.startsWith('http://') || "
        "(has(self.allowPlainHttp) && self.allowPlainHttp)",
        PLAIN_HTTP_MESSAGE,
        field_path=".endpoint",
    ),
)


class ObjectStorageSpec(SpecModel):
    """S3 or an S3-compatible store. Its credentials are also used for backups and exports."""

    model_config = ConfigDict(json_schema_extra=_STORAGE_RULES)

    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/$.?#][^\s]*$",
        max_length=2048,
        description="Endpoint URL of an S3-compatible store; AWS S3 when omitted. No "
        "user:password@ (credentials come from credentialsSecretRef); https:// unless "
        "allowPlainHttp is true.",
    )
    allowPlainHttp: bool = Field(
        default=False,
        description="Accept an http:// endpoint. Everything sent to it, backups and exports "
        "included, travels unencrypted: only for a loopback or test server.",
    )
    region: str = Field(
        default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$", description="Region of the buckets."
    )
    credentialsSecretRef: SecretRef = Field(
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )
    buckets: Annotated[list[BucketSpec], Field(json_schema_extra=list_map("name"))] = Field(
        default_factory=list,
        max_length=MAX_BUCKETS,
        description="Buckets whose lifecycle the operator manages; names unique.",
    )

    @field_validator("buckets")
    @classmethod
    def _unique_names(cls, buckets: list[BucketSpec]) -> list[BucketSpec]:
        repeated = duplicates(bucket.name for bucket in buckets)
        if repeated:
            raise spec_error(
                "bucket(s) {repeated} listed more than once; merge their lifecycle rules",
                repeated=", ".join(repeated),
            )
        return buckets

    @model_validator(mode="after")
    def _endpoint_safe(self) -> ObjectStorageSpec:
        # The messages never quote the endpoint: it may hold a password.
        if self.endpoint is not None and "@" in self.endpoint:
            raise spec_error(ENDPOINT_USERINFO_MESSAGE)
        if (
            self.endpoint is not None
            and self.endpoint.startswith("http://")
            and not self.allowPlainHttp
        ):
            raise spec_error(PLAIN_HTTP_MESSAGE)
        return self


class BackupScheduleSpec(SpecModel):
    """A backup CronJob: when it runs and how many backups it keeps."""

    name: DnsLabel = Field(description="Schedule name, part of the CronJob's name.")
    schedule: Schedule = Field(description='Cron schedule in UTC, e.g. "0 2 * * *".')
    keep: int = Field(ge=1, le=1000, description="Newest backups of this schedule kept.")
    storageClass: StorageClass = Field(
        default="STANDARD", description="Storage class of the backup objects."
    )


class VerifyTargetSpec(SpecModel):
    """A PostgreSQL server that restore verification may write to: never the primary."""

    secretRef: SecretKeyRef = Field(
        description="Secret key holding the URL (postgresql://...) of a scratch server whose "
        "role has CREATEDB; the verify job refuses it when it is the primary's server."
    )


class BackupsSpec(SpecModel):
    """pg_dump backups streamed to S3 (with spec.objectStorage's credentials)."""

    bucket: BucketName = Field(description="Bucket receiving the backups.")
    prefix: str = Field(default="backups/", max_length=1024, description="Key prefix.")
    schedules: Annotated[list[BackupScheduleSpec], Field(json_schema_extra=list_map("name"))] = (
        Field(
            default_factory=list,
            max_length=MAX_SCHEDULES,
            description="Backup schedules; names unique.",
        )
    )
    compression: Compression = Field(default="zstd", description="gzip, zstd, lz4 or none.")
    verifyRestore: bool = Field(
        default=False,
        description="Verify each new backup: restored into a scratch database on verifyTarget, "
        "or without verifyTarget checked without a database (object digest, the archive read "
        "in full, row counts against the manifest). Never on the primary.",
    )
    verifyTarget: VerifyTargetSpec | None = Field(
        default=None,
        description="Server the restore verification writes its scratch databases to.",
    )

    @field_validator("schedules")
    @classmethod
    def _unique_names(cls, schedules: list[BackupScheduleSpec]) -> list[BackupScheduleSpec]:
        repeated = duplicates(schedule.name for schedule in schedules)
        if repeated:
            raise spec_error(
                "schedule name(s) {repeated} used more than once", repeated=", ".join(repeated)
            )
        return schedules
