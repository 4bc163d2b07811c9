"""The desired state of a LokifiStorage resource: the contract admins write.

These models are the single source of truth: the CRD's OpenAPI schema, its CEL rules and
docs/api.md are generated from them. Field names follow DESIGN.md and never change; new fields
may be added. Docstrings and field descriptions become the CRD's descriptions, so they are
written for the cluster admin reading `kubectl explain`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Interval = Literal["day", "week", "month", "quarter", "year"]
Compression = Literal["gzip", "zstd", "lz4", "none"]
DeletionPolicy = Literal["Retain", "Delete"]
StorageClass = Literal[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
]


class SpecModel(BaseModel):
    """Base of every spec model: unknown fields are an error, camelCase names as in YAML."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SecretKeyRef(SpecModel):
    """A key inside a Secret in the resource's namespace."""

    name: str = Field(description="Name of the Secret.")
    key: str = Field(description="Key inside the Secret's data.")


class SecretRef(SpecModel):
    """A whole Secret in the resource's namespace."""

    name: str = Field(description="Name of the Secret.")


class PrimarySpec(SpecModel):
    """The PostgreSQL primary that takes writes."""

    secretRef: SecretKeyRef = Field(
        description="Secret key holding the primary's URL: postgresql://user:pass@host:5432/db."
    )


class ReplicaSpec(SpecModel):
    """A streaming read replica. Only healthy replicas are named in the connection Secret."""

    name: str = Field(description="Stable name of the replica, used in status and events.")
    secretRef: SecretKeyRef = Field(description="Secret key holding the replica's URL.")
    maxLagSeconds: float = Field(
        default=30, description="A replica lagging more than this is left out of the Secret."
    )


class PoolSpec(SpecModel):
    """Connection-pool settings handed to the application through the connection Secret."""

    size: int = Field(default=20, description="DATABASE_POOL_SIZE.")
    maxOverflow: int = Field(default=30, description="DATABASE_MAX_OVERFLOW.")
    timeoutSeconds: int = Field(default=30, description="DATABASE_POOL_TIMEOUT.")
    recycleSeconds: int = Field(default=3600, description="DATABASE_POOL_RECYCLE.")


class ConnectionSecretSpec(SpecModel):
    """The Secret the operator writes for application pods."""

    name: str = Field(description="Name of the Secret the operator creates and keeps current.")
    driver: str = Field(
        default="postgresql",
        description="URL scheme written into the URLs, e.g. postgresql+asyncpg.",
    )


class PartitionBySpec(SpecModel):
    """Time-range partitioning of a table on a timestamp column."""

    column: str = Field(description="The table's RANGE partition key column.")
    interval: Interval = Field(description="Width of each partition, aligned to UTC calendar.")


class SubpartitionBySpec(SpecModel):
    """Splits each time partition into integer ranges of a second column (e.g. user_id)."""

    column: str = Field(description="Integer column each time partition is ranged on.")
    rangeSize: int = Field(description="Width of each sub-partition's range.")
    count: int = Field(description="Number of sub-partitions, covering [0, count*rangeSize).")


class FullTextSpec(SpecModel):
    """A GIN index on to_tsvector(language, column)."""

    column: str = Field(description="Text column to index.")
    language: str = Field(default="english", description="Text-search configuration.")


class WhereSpec(SpecModel):
    """A partial-index predicate: column = value."""

    column: str = Field(description="Column compared in the predicate.")
    equals: bool | int | str = Field(description="Value the column must equal.")


class IndexSpec(SpecModel):
    """An index kept on the parent table and every partition."""

    name: str = Field(description="Index name on the parent; partitions get derived names.")
    columns: list[str] = Field(
        default_factory=list,
        description='Key columns in order, each optionally followed by " DESC" or " ASC".',
    )
    fullText: FullTextSpec | None = Field(default=None, description="Full-text GIN index.")
    where: WhereSpec | None = Field(default=None, description="Makes the index partial.")


class ArchiveSpec(SpecModel):
    """Moves old partitions to an archive table: metadata work, no row copying."""

    afterDays: int = Field(description="Partitions wholly older than this are archived.")
    schema_: str = Field(
        default="archive", alias="schema", description="Schema of the archive table."
    )
    compressAfterDays: int | None = Field(
        default=None, description="Archived partitions older than this are rewritten with lz4."
    )


class ExportToSpec(SpecModel):
    """Where expired partitions are exported before they are dropped."""

    bucket: str = Field(description="S3 bucket receiving the exported partition.")
    storageClass: StorageClass = Field(default="DEEP_ARCHIVE", description="Object storage class.")
    prefix: str = Field(default="", description="Key prefix for exported objects.")


class RetentionSpec(SpecModel):
    """When partitions are dropped, and where their data goes first."""

    dropAfterDays: int = Field(description="Partitions wholly older than this are dropped.")
    exportTo: ExportToSpec | None = Field(
        default=None, description="Export to S3, verified, before the drop."
    )
    dropWithoutExport: bool = Field(
        default=False,
        description="Without exportTo, partitions are only dropped when this is true.",
    )


class TableSpec(SpecModel):
    """A table the operator keeps partitioned and indexed."""

    name: str = Field(description="[schema.]table; must exist, PARTITION BY RANGE when partitioned.")
    partitionBy: PartitionBySpec | None = Field(default=None, description="Time partitioning.")
    premake: int = Field(default=3, description="Future partitions kept ready.")
    subpartitionBy: SubpartitionBySpec | None = Field(default=None, description="Sub-ranges.")
    indexes: list[IndexSpec] = Field(default_factory=list, description="Indexes to keep.")
    archive: ArchiveSpec | None = Field(default=None, description="Archival of old partitions.")
    retention: RetentionSpec | None = Field(default=None, description="Dropping of old partitions.")


class PostgresSpec(SpecModel):
    """PostgreSQL primary, replicas, pool settings and managed tables."""

    primary: PrimarySpec
    replicas: list[ReplicaSpec] = Field(default_factory=list)
    pool: PoolSpec = Field(default_factory=PoolSpec)
    connectionSecret: ConnectionSecretSpec | None = None
    tables: list[TableSpec] = Field(default_factory=list)


class RedisNodeSpec(SpecModel):
    """A seed node of the Redis Cluster; the rest are discovered."""

    host: str
    port: int = 6379


class RedisSpec(SpecModel):
    """Redis Cluster settings applied with CONFIG SET on every node."""

    nodes: list[RedisNodeSpec]
    passwordSecretRef: SecretKeyRef | None = None
    settings: dict[str, str] = Field(default_factory=dict)
    contextTTLSeconds: int = 3600


class TransitionSpec(SpecModel):
    """Move objects to another storage class after some days."""

    afterDays: int
    storageClass: StorageClass


class LifecycleRuleSpec(SpecModel):
    """One S3 lifecycle rule, identified by its id."""

    id: str
    prefix: str = ""
    enabled: bool = True
    transitions: list[TransitionSpec] = Field(default_factory=list)
    expirationDays: int | None = None
    abortIncompleteUploadsAfterDays: int | None = None


class BucketSpec(SpecModel):
    """A bucket whose lifecycle rules the operator manages."""

    name: str
    create: bool = False
    lifecycle: list[LifecycleRuleSpec] = Field(default_factory=list)


class ObjectStorageSpec(SpecModel):
    """S3 or an S3-compatible store."""

    endpoint: str | None = None
    region: str = "us-east-1"
    credentialsSecretRef: SecretRef
    buckets: list[BucketSpec] = Field(default_factory=list)


class BackupScheduleSpec(SpecModel):
    """A backup CronJob: when it runs and how many backups it keeps."""

    name: str
    schedule: str
    keep: int
    storageClass: StorageClass = "STANDARD"


class BackupsSpec(SpecModel):
    """pg_dump backups streamed to S3."""

    bucket: str
    prefix: str = "backups/"
    schedules: list[BackupScheduleSpec] = Field(default_factory=list)
    compression: Compression = "zstd"
    verifyRestore: bool = False


class VacuumSpec(SpecModel):
    """A VACUUM CronJob."""

    schedule: str
    tables: list[str] = Field(default_factory=list)
    analyze: bool = True


class MaintenanceSpec(SpecModel):
    """Scheduled database maintenance."""

    vacuum: VacuumSpec | None = None


class MonitoringSpec(SpecModel):
    """Storage growth watching and the capacity alert."""

    capacity: str
    alertThresholdPercent: int = 80


class LokifiStorageSpec(SpecModel):
    """The whole storage stack of one Lokifi deployment. Every part is optional."""

    postgres: PostgresSpec | None = None
    redis: RedisSpec | None = None
    objectStorage: ObjectStorageSpec | None = None
    backups: BackupsSpec | None = None
    maintenance: MaintenanceSpec | None = None
    monitoring: MonitoringSpec | None = None
    deletionPolicy: DeletionPolicy = "Retain"
