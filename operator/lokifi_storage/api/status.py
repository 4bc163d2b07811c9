"""What the operator observed and did, as written to `.status` of a LokifiStorage.

Conditions follow the Kubernetes convention (and kstatus) so `kubectl wait`, Argo CD and Flux
read health. Every block is optional: a part that is not in the spec reports nothing.

Two fields exist only for `kubectl get lks` printer columns, because JSONPath can neither sum
nor format: `storage.databaseSize` (databaseBytes as `12.3Gi`) and `summary` (total partitions,
worst replica lag, newest backup). Both are derived when the model is built, never set by hand,
so they cannot disagree with the data they summarize and change only when that data changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.quantity import format_bytes

ConditionStatus = Literal["True", "False", "Unknown"]


class StatusModel(BaseModel):
    """Base of every status model; tolerant of fields added by newer operator versions."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Condition(StatusModel):
    """One condition in the Kubernetes convention."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    observedGeneration: int | None = None
    lastTransitionTime: str | None = None


# Conditions are built through these, so True/False and the reason that goes with them are
# said once per meaning rather than spelt out at every report.


def ready(kind: str, message: str, reason: str = Reason.RECONCILED) -> Condition:
    """`kind` is at the declared state (True)."""
    return Condition(type=kind, status="True", reason=reason, message=message)


def failed(kind: str, reason: str, message: str = "") -> Condition:
    """`kind` is not at the declared state (False), for `reason`."""
    return Condition(type=kind, status="False", reason=reason, message=message)


def judged(kind: str, ok: bool, reason: str, message: str) -> Condition:
    """True or False as a verdict computed elsewhere says, with the verdict's reason."""
    return ready(kind, message, reason) if ok else failed(kind, reason, message)


def raised(kind: str, reason: str, message: str) -> Condition:
    """Reconciling or Stalled set (True): the operator is retrying, or a human must act."""
    return Condition(type=kind, status="True", reason=reason, message=message)


def cleared(kind: str, reason: str = Reason.RECONCILED) -> Condition:
    """Reconciling or Stalled not set (False): nothing to retry, nothing to fix."""
    return Condition(type=kind, status="False", reason=reason, message="")


class PartitionStatus(StatusModel):
    """Partitions of one managed table."""

    table: str
    count: int = 0
    oldest: str | None = None
    newest: str | None = None
    inDefault: int = 0
    archived: int = 0
    pendingCompress: int = 0  # archived partitions awaiting `lokifi-storage partitions compress`
    pendingExport: int = 0  # expired partitions awaiting `lokifi-storage partitions export`


class ReplicaStatus(StatusModel):
    """Health of one read replica."""

    name: str
    healthy: bool
    lagSeconds: float | None = Field(
        default=None,
        description=(
            "Replay lag behind the primary, to two significant digits; under a second reads 0, "
            "so a busy but healthy replica does not rewrite status on every pass."
        ),
    )
    streaming: bool | None = None
    reason: str | None = None


class StorageSample(StatusModel):
    """The database size at one moment; the history growth per day is computed from."""

    time: str
    bytes: int


class RelationSize(StatusModel):
    """One of the largest tables or partitions (heap, indexes and TOAST together)."""

    name: str
    bytes: int


class StorageStatus(StatusModel):
    """Database size, growth and the projected date the capacity is reached.

    Values move when a sample is recorded (at most hourly) or when the capacity alert changes,
    so status is not rewritten on every reconcile; the live size is the
    lokifi_storage_database_bytes metric.
    """

    databaseBytes: int | None = None
    databaseSize: str | None = Field(
        default=None,
        description="databaseBytes for humans (e.g. 12.3Gi); derived, the DB Size column.",
    )
    capacityBytes: int | None = None
    usedPercent: float | None = None
    growthBytesPerDay: float | None = None
    projectedFullDate: str | None = None
    sampledAt: str | None = None
    largest: list[RelationSize] = Field(default_factory=list)
    samples: list[StorageSample] = Field(default_factory=list)

    @model_validator(mode="after")
    def _derive_size(self) -> StorageStatus:
        self.databaseSize = None if self.databaseBytes is None else format_bytes(self.databaseBytes)
        return self


class BackupStatus(StatusModel):
    """The newest backup of one schedule."""

    schedule: str
    lastSuccessfulTime: str | None = None
    lastSizeBytes: int | None = None
    lastVerifiedTime: str | None = None
    lastKey: str | None = None
    count: int | None = None
    lastVerifyResult: Literal["Passed", "Failed"] | None = None
    # What the last verification was: Restore (into spec.backups.verifyTarget), Archive (no
    # database: digest, the archive read in full, row counts against the manifest), or
    # NotVerified for a GLACIER/DEEP_ARCHIVE schedule, whose objects cannot be read back.
    lastVerifyKind: Literal["Restore", "Archive", "NotVerified"] | None = None


class RedisStatus(StatusModel):
    """State of the Redis Cluster as the operator last saw it."""

    clusterState: str | None = None
    slotsAssigned: int | None = None
    slotsOk: int | None = None
    slotsFail: int | None = None
    masters: int | None = None
    replicas: int | None = None
    usedMemoryBytes: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "used_memory per node (host:port), in whole MiB, to two significant digits of MiB "
            "from 10 MiB up, so it changes only when memory moves by a few percent."
        ),
    )


class BucketStatus(StatusModel):
    """One bucket of spec.objectStorage: whether it exists and which lifecycle rules are whose."""

    name: str
    exists: bool | None = Field(default=None, description="None when it could not be checked.")
    managedRules: list[str] = Field(
        default_factory=list,
        description="Ids of the lifecycle rules the operator set on the bucket. Kept so a rule "
        "removed from the spec is removed from the bucket on the next pass.",
    )
    foreignRules: int = Field(
        default=0, description="Lifecycle rules of the bucket the operator leaves untouched."
    )
    reason: str | None = None


class ObjectStorageStatus(StatusModel):
    """State of the buckets of spec.objectStorage."""

    buckets: list[BucketStatus] = Field(default_factory=list)


class ConnectionSecretStatus(StatusModel):
    """The connection Secret the operator keeps for application pods."""

    name: str = Field(
        description=(
            "The Secret written from spec.postgres.connectionSecret. Recorded so that a rename can "
            "delete the Secret of the old name once the new one exists: finding it otherwise "
            "would need permission to list every Secret of the namespace."
        )
    )


class PlannedFieldStatus(StatusModel):
    """One field a planned change touches; old and new are absent for Secret keys."""

    name: str
    old: str | None = None
    new: str | None = None


class PlannedChangeStatus(StatusModel):
    """One write the operator would make and, in dry-run, did not."""

    part: str = Field(description="partitions, redis, objectStorage, connectionSecret or cronJobs.")
    target: str = Field(description="The table, Redis node, bucket or object it applies to.")
    kind: Literal["create", "update", "delete"]
    detail: str
    fields: list[PlannedFieldStatus] = Field(default_factory=list)


class PlanStatus(StatusModel):
    """What a reconcile would change, written while spec.dryRun is true."""

    observedGeneration: int | None = Field(
        default=None, description="The generation of the spec this plan is for."
    )
    summary: str = Field(description="`Plan: N to create, N to change, N to delete (...)`.")
    changes: int = Field(description="How many changes are planned (items lists the first 50).")
    items: list[PlannedChangeStatus] = Field(default_factory=list)


class SummaryStatus(StatusModel):
    """Totals for `kubectl get lks` columns; derived from the rest of the status."""

    partitions: int | None = Field(
        default=None, description="Partitions of all managed tables (the Partitions column)."
    )
    maxReplicaLagSeconds: float | None = Field(
        default=None, description="Lag of the most lagging replica (the Replica Lag column)."
    )
    lastBackupTime: str | None = Field(
        default=None, description="Newest successful backup of any schedule (Last Backup)."
    )


def _newest(times: list[str]) -> str | None:
    def key(text: str) -> datetime:
        return datetime.fromisoformat(text)

    try:
        return max(times, key=key) if times else None
    except (TypeError, ValueError):  # not ISO 8601 (or mixed zones): RFC 3339 text order
        return max(times)


def summarize(status: LokifiStorageStatus) -> SummaryStatus:
    """The printer-column totals of `status`; None where there is nothing to total."""
    lags = [r.lagSeconds for r in status.replicas if r.lagSeconds is not None]
    return SummaryStatus(
        partitions=sum(p.count for p in status.partitions) if status.partitions else None,
        maxReplicaLagSeconds=max(lags) if lags else None,
        lastBackupTime=_newest(
            [b.lastSuccessfulTime for b in status.backups if b.lastSuccessfulTime]
        ),
    )


class LokifiStorageStatus(StatusModel):
    """Observed state of the storage stack."""

    observedGeneration: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    partitions: list[PartitionStatus] = Field(default_factory=list)
    replicas: list[ReplicaStatus] = Field(default_factory=list)
    storage: StorageStatus | None = None
    backups: list[BackupStatus] = Field(default_factory=list)
    redis: RedisStatus | None = None
    objectStorage: ObjectStorageStatus | None = None
    connectionSecret: ConnectionSecretStatus | None = None
    plan: PlanStatus | None = Field(
        default=None,
        description="While spec.dryRun is true: the changes the operator found and did not make.",
    )
    summary: SummaryStatus | None = Field(
        default=None, description="Totals for kubectl get columns; derived, never set by hand."
    )

    @model_validator(mode="after")
    def _derive_summary(self) -> LokifiStorageStatus:
        summary = summarize(self)
        self.summary = summary if summary != SummaryStatus() else None
        return self
