"""The one vocabulary of condition types and reasons.

Status conditions, Events, metrics labels and docs/operations.md all use these names, so an
admin who sees a reason anywhere can look it up in one place. Add new reasons here, never inline.
"""

from __future__ import annotations

from typing import Final

# Condition types: the kstatus trio plus one per part.
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
POSTGRES_READY: Final = "PostgresReady"
PARTITIONS_READY: Final = "PartitionsReady"
REPLICAS_READY: Final = "ReplicasReady"
REDIS_READY: Final = "RedisReady"
OBJECT_STORAGE_READY: Final = "ObjectStorageReady"
BACKUPS_READY: Final = "BackupsReady"
CAPACITY_OK: Final = "CapacityOK"

PART_CONDITIONS: Final = (
    POSTGRES_READY,
    PARTITIONS_READY,
    REPLICAS_READY,
    REDIS_READY,
    OBJECT_STORAGE_READY,
    BACKUPS_READY,
    CAPACITY_OK,
)


class Reason:
    """Reasons, CamelCase as Kubernetes expects. Grouped by where they occur."""

    # Overall
    RECONCILED: Final = "Reconciled"
    PROGRESSING: Final = "Progressing"
    INVALID_SPEC: Final = "InvalidSpec"
    PART_FAILED: Final = "PartFailed"
    SECRET_NOT_FOUND: Final = "SecretNotFound"
    SECRET_KEY_NOT_FOUND: Final = "SecretKeyNotFound"
    SECRET_CONFLICT: Final = "SecretConflict"  # the connection Secret belongs to another owner
    CRONJOB_CONFLICT: Final = "CronJobConflict"  # a CronJob's name is held by another object
    # An owned object's name is still held by the object of a deleted LokifiStorage of the same
    # name, which the garbage collector removes soon: retried.
    GARBAGE_COLLECTION_PENDING: Final = "GarbageCollectionPending"
    # A table, Redis setting or lifecycle rule is managed by another LokifiStorage with another
    # desired value: this resource changes nothing there.
    CONFLICT: Final = "Conflict"
    CLEANUP_FAILED: Final = "CleanupFailed"  # deletionPolicy Delete could not remove something
    CLEANED_UP: Final = "CleanedUp"  # deletionPolicy Delete removed what the operator created
    # The operator's ServiceAccount may not write an owned object (an RBAC rule is missing).
    FORBIDDEN: Final = "Forbidden"
    # spec.dryRun: the part has changes planned and, by request, not applied.
    DRY_RUN: Final = "DryRun"
    PLANNED: Final = "Planned"  # the Event of one planned change (dry-run)

    # PostgreSQL
    CONNECTION_FAILED: Final = "ConnectionFailed"
    AUTHENTICATION_FAILED: Final = "AuthenticationFailed"
    PRIMARY_IN_RECOVERY: Final = "PrimaryInRecovery"

    # Partitions
    TABLE_NOT_FOUND: Final = "TableNotFound"
    TABLE_NOT_PARTITIONED: Final = "TableNotPartitioned"
    PARTITION_KEY_MISMATCH: Final = "PartitionKeyMismatch"
    # A primary key or unique constraint lacks a partitioning column: PostgreSQL refuses the
    # partitions (or sub-partitions) that column would need.
    KEY_LACKS_PARTITION_COLUMN: Final = "KeyLacksPartitionColumn"
    LOCK_TIMEOUT: Final = "LockTimeout"
    MAINTENANCE_PENDING: Final = "MaintenancePending"
    INDEX_MISMATCH: Final = "IndexDefinitionMismatch"
    RANGE_CONFLICT: Final = "PartitionRangeConflict"
    PARTITION_ACTION_FAILED: Final = "PartitionActionFailed"
    EXPORT_FAILED: Final = "ExportFailed"
    EXPORT_NOT_VERIFIED: Final = "ExportNotVerified"
    # The export key holds an object that is not this partition's export: the partition is kept.
    EXPORT_CONFLICT: Final = "ExportConflict"
    # Another writer holds the table's partition-work lock (an advisory lock on the primary).
    PARTITION_WORK_BUSY: Final = "PartitionWorkBusy"
    # The pod's and the database server's clocks disagree: nothing is exported or dropped.
    CLOCK_SKEW: Final = "ClockSkew"
    # The operator lost its Lease while a part was running: the part stopped.
    LEADERSHIP_LOST: Final = "LeadershipLost"
    # The last run of a CronJob (backup, vacuum, partitions compress/export) failed.
    JOB_FAILED: Final = "JobFailed"

    # Replicas
    REPLICA_UNREACHABLE: Final = "ReplicaUnreachable"
    REPLICA_NOT_IN_RECOVERY: Final = "ReplicaNotInRecovery"
    REPLICA_LAGGING: Final = "ReplicaLagging"
    REPLICAS_DEGRADED: Final = "ReplicasDegraded"

    # Redis
    CLUSTER_NOT_OK: Final = "ClusterNotOk"
    NODE_UNREACHABLE: Final = "NodeUnreachable"
    SETTING_REFUSED: Final = "SettingRefused"

    # Object storage
    ACCESS_DENIED: Final = "AccessDenied"
    BUCKET_NOT_FOUND: Final = "BucketNotFound"
    INVALID_LIFECYCLE: Final = "InvalidLifecycle"
    ENDPOINT_UNREACHABLE: Final = "EndpointUnreachable"

    # Backups and capacity
    BACKUP_MISSING: Final = "BackupMissing"
    BACKUP_STALE: Final = "BackupStale"
    VERIFY_FAILED: Final = "VerifyFailed"
    CAPACITY_THRESHOLD_EXCEEDED: Final = "CapacityThresholdExceeded"
    WITHIN_CAPACITY: Final = "WithinCapacity"
    BACKUPS_CURRENT: Final = "BackupsCurrent"  # every schedule has a recent, unfailed backup
    BACKUP_PENDING: Final = "BackupPending"  # no backup yet, but the first is not overdue
    BACKUP_FAILED: Final = "BackupFailed"  # pg_dump or the upload failed (job exit, events)
    RESTORE_FAILED: Final = "RestoreFailed"  # pg_restore failed (restore/verify jobs)
    BACKUP_CORRUPT: Final = "BackupCorrupt"  # checksum or compression frame damaged
    SIZE_UNKNOWN: Final = "SizeUnknown"  # the database size could not be measured
