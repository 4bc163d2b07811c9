"""What the operator observed and did, as written to `.status` of a LokifiStorage.

Conditions follow the Kubernetes convention (and kstatus) so `kubectl wait`, Argo CD and Flux
read health. Every block is optional: a part that is not in the spec reports nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PartitionStatus(StatusModel):
    """Partitions of one managed table."""

    table: str
    count: int = 0
    oldest: str | None = None
    newest: str | None = None
    inDefault: int = 0
    archived: int = 0


class ReplicaStatus(StatusModel):
    """Health of one read replica."""

    name: str
    healthy: bool
    lagSeconds: float | None = None
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
    capacityBytes: int | None = None
    usedPercent: float | None = None
    growthBytesPerDay: float | None = None
    projectedFullDate: str | None = None
    sampledAt: str | None = None
    largest: list[RelationSize] = Field(default_factory=list)
    samples: list[StorageSample] = Field(default_factory=list)


class BackupStatus(StatusModel):
    """The newest backup of one schedule."""

    schedule: str
    lastSuccessfulTime: str | None = None
    lastSizeBytes: int | None = None
    lastVerifiedTime: str | None = None
    lastKey: str | None = None
    count: int | None = None
    lastVerifyResult: Literal["Passed", "Failed"] | None = None


class RedisStatus(StatusModel):
    """State of the Redis Cluster as the operator last saw it."""

    clusterState: str | None = None
    slotsAssigned: int | None = None
    slotsOk: int | None = None
    slotsFail: int | None = None
    masters: int | None = None
    replicas: int | None = None
    usedMemoryBytes: dict[str, int] = Field(default_factory=dict)


class LokifiStorageStatus(StatusModel):
    """Observed state of the storage stack."""

    observedGeneration: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    partitions: list[PartitionStatus] = Field(default_factory=list)
    replicas: list[ReplicaStatus] = Field(default_factory=list)
    storage: StorageStatus | None = None
    backups: list[BackupStatus] = Field(default_factory=list)
    redis: RedisStatus | None = None
