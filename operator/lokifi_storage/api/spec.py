"""The desired state of a LokifiStorage resource: the contract admins write.

These models are the single source of truth: the CRD's OpenAPI schema, its CEL rules and
docs/api.md are generated from them. Field names are the v1alpha1 API and never change; new fields
may be added. Docstrings and field descriptions become the CRD's descriptions, so they are
written for the cluster admin reading `kubectl explain`.

The parts live in their own modules (spec_postgres, with a table's parts in spec_tables,
spec_indexes and spec_archive; spec_redis; spec_s3; shared pieces in spec_base) and are
re-exported here, so `from lokifi_storage.api.spec import TableSpec` is the
one import everybody uses. This module holds the top level and the small parts.

Validation messages name the field (pydantic prefixes the path, e.g.
`postgres.tables.0.name: 'Bad' is not a valid table name: ...`) and say how to fix it; the
same rules reach the API server as OpenAPI constraints and CEL (see api/crd.py).
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from lokifi_storage.api.names import TableName
from lokifi_storage.api.quantity import (
    KUBERNETES_QUANTITY_PATTERN,
    QuantityError,
    parse_kubernetes_quantity,
)
from lokifi_storage.api.spec_archive import ArchiveSpec, ExportToSpec, RetentionSpec
from lokifi_storage.api.spec_base import (
    LIST_SET,
    Compression,
    DeletionPolicy,
    Interval,
    Schedule,
    SecretKeyRef,
    SecretRef,
    SpecModel,
    StorageClass,
    TransitionStorageClass,
    cel,
    cel_rules,
    spec_error,
)
from lokifi_storage.api.spec_indexes import FullTextSpec, IndexSpec, WhereSpec
from lokifi_storage.api.spec_postgres import (
    ConnectionSecretSpec,
    PoolSpec,
    PostgresSpec,
    PrimarySpec,
    ReplicaSpec,
)
from lokifi_storage.api.spec_redis import RedisNodeSpec, RedisSpec
from lokifi_storage.api.spec_s3 import (
    BackupScheduleSpec,
    BackupsSpec,
    BucketSpec,
    LifecycleRuleSpec,
    ObjectStorageSpec,
    TransitionSpec,
    VerifyTargetSpec,
)
from lokifi_storage.api.spec_tables import PartitionBySpec, SubpartitionBySpec, TableSpec

__all__ = [
    "ArchiveSpec",
    "BackupScheduleSpec",
    "BackupsSpec",
    "BucketSpec",
    "Compression",
    "ConnectionSecretSpec",
    "DeletionPolicy",
    "ExportToSpec",
    "FullTextSpec",
    "IndexSpec",
    "Interval",
    "LifecycleRuleSpec",
    "LokifiStorageSpec",
    "MaintenanceSpec",
    "MonitoringSpec",
    "ObjectStorageSpec",
    "PartitionBySpec",
    "PoolSpec",
    "PostgresSpec",
    "PrimarySpec",
    "RedisNodeSpec",
    "RedisSpec",
    "ReplicaSpec",
    "RetentionSpec",
    "SecretKeyRef",
    "SecretRef",
    "SpecModel",
    "StorageClass",
    "SubpartitionBySpec",
    "TableSpec",
    "TransitionSpec",
    "TransitionStorageClass",
    "VacuumSpec",
    "VerifyTargetSpec",
    "WhereSpec",
]

MAX_VACUUM_TABLES: Final = 100


class VacuumSpec(SpecModel):
    """A VACUUM CronJob."""

    schedule: Schedule = Field(description='Cron schedule in UTC, e.g. "0 5 * * 0".')
    tables: Annotated[list[TableName], Field(json_schema_extra=LIST_SET)] = Field(
        default_factory=list,
        max_length=MAX_VACUUM_TABLES,
        description="[schema.]table names to vacuum; any table of the database, managed "
        "here or not (a table that does not exist is reported, not created). Empty "
        "vacuums the whole database.",
    )
    analyze: bool = Field(default=True, description="VACUUM (ANALYZE): refresh planner stats.")


# Daily at 01:30 UTC: before the usual backup hour, so a backup sees the night's exports done.
DEFAULT_PARTITION_JOBS_SCHEDULE = "30 1 * * *"


class PartitionJobsSpec(SpecModel):
    """When the heavy partition work runs: the packing of archived months
    (`compressAfterDays`) and the verified export then drop (`retention.exportTo`). The
    reconciler only plans and reports this work; CronJobs do it, off the reconcile path."""

    schedule: Schedule = Field(
        default=DEFAULT_PARTITION_JOBS_SCHEDULE,
        description="Cron schedule in UTC of the partitions compress and export CronJobs, "
        'e.g. "30 1 * * *".',
    )


class MaintenanceSpec(SpecModel):
    """Scheduled database maintenance."""

    vacuum: VacuumSpec | None = Field(default=None, description="Scheduled VACUUM.")
    partitions: PartitionJobsSpec | None = Field(
        default=None,
        description="Schedule of the partitions compress/export CronJobs (created only for "
        "tables with compressAfterDays or retention.exportTo); default daily at 01:30 UTC.",
    )


def _quantity_text(value: object) -> object:
    # `capacity: 1000000000000` arrives as an int from YAML; it is still a valid quantity.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_capacity(value: str) -> str:
    try:
        size = parse_kubernetes_quantity(value)
    except QuantityError as err:
        raise spec_error("{problem}", problem=str(err)) from err
    if size <= 0:
        raise spec_error("{value!r}: capacity must be greater than zero", value=value)
    return value


Capacity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    AfterValidator(_check_capacity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": KUBERNETES_QUANTITY_PATTERN,
        }
    ),
]


class MonitoringSpec(SpecModel):
    """Storage growth watching and the capacity alert (the CapacityOK condition)."""

    capacity: Capacity = Field(
        description="Storage available to the database, as a Kubernetes quantity: 1Ti, "
        "500Gi (powers of 1024) or 2T, 500G (powers of 1000)."
    )
    alertThresholdPercent: int = Field(
        default=80,
        ge=1,
        le=100,
        description="CapacityOK turns False when the database uses more than this percentage "
        "of capacity.",
    )

    @property
    def capacity_bytes(self) -> int:
        """`capacity` in bytes."""
        return parse_kubernetes_quantity(self.capacity)


WRITTEN_NAME_CLASH_MESSAGE: Final = (
    "postgres.connectionSecret.name must differ from every Secret the spec reads "
    "(postgres.primary, postgres.replicas, redis.passwordSecretRef, "
    "objectStorage.credentialsSecretRef, backups.verifyTarget): the operator writes the "
    "connection Secret and would "
    "overwrite those credentials; choose another name"
)

_SPEC_RULES: Final = cel_rules(
    cel(
        "!has(self.backups) || (has(self.postgres) && has(self.objectStorage))",
        "backups need spec.postgres (the database to back up) and spec.objectStorage (the S3 "
        "endpoint and credentials)",
        field_path=".backups",
    ),
    cel(
        "has(self.objectStorage) || !has(self.postgres) || !has(self.postgres.tables) || "
        "self.postgres.tables.all(t, !has(t.retention) || !has(t.retention.exportTo))",
        "retention.exportTo needs spec.objectStorage (the S3 endpoint and credentials)",
        field_path=".postgres.tables",
    ),
    cel(
        "!has(self.maintenance) || !has(self.maintenance.vacuum) || has(self.postgres)",
        "maintenance.vacuum needs spec.postgres",
        field_path=".maintenance",
    ),
    cel(
        "!has(self.monitoring) || has(self.postgres)",
        "monitoring measures the database: it needs spec.postgres",
        field_path=".monitoring",
    ),
    cel(
        "!has(self.postgres) || !has(self.postgres.connectionSecret) || ("
        "self.postgres.connectionSecret.name != self.postgres.primary.secretRef.name && "
        "(!has(self.postgres.replicas) || self.postgres.replicas.all(r, "
        "r.secretRef.name != self.postgres.connectionSecret.name)) && "
        "(!has(self.redis) || !has(self.redis.passwordSecretRef) || "
        "self.redis.passwordSecretRef.name != self.postgres.connectionSecret.name) && "
        "(!has(self.objectStorage) || "
        "self.objectStorage.credentialsSecretRef.name != self.postgres.connectionSecret.name) && "
        "(!has(self.backups) || !has(self.backups.verifyTarget) || "
        "self.backups.verifyTarget.secretRef.name != self.postgres.connectionSecret.name))",
        WRITTEN_NAME_CLASH_MESSAGE,
        field_path=".postgres.connectionSecret.name",
    ),
)


class LokifiStorageSpec(SpecModel):
    """The whole storage stack of one Lokifi deployment. Every part is optional: a resource
    with only postgres manages only PostgreSQL."""

    model_config = ConfigDict(json_schema_extra=_SPEC_RULES)

    postgres: PostgresSpec | None = Field(
        default=None, description="PostgreSQL primary, replicas, pool and managed tables."
    )
    redis: RedisSpec | None = Field(default=None, description="Redis Cluster settings.")
    objectStorage: ObjectStorageSpec | None = Field(
        default=None, description="S3 endpoint, credentials and bucket lifecycle rules."
    )
    backups: BackupsSpec | None = Field(
        default=None, description="Scheduled pg_dump backups to S3."
    )
    maintenance: MaintenanceSpec | None = Field(
        default=None, description="Scheduled database maintenance."
    )
    monitoring: MonitoringSpec | None = Field(
        default=None, description="Database growth and the capacity alert."
    )
    dryRun: bool = Field(
        default=False,
        description="true: observe and plan every part, report the plan in status.plan and "
        "Events, and change nothing (no DDL, CONFIG SET, S3 write, Secret or CronJob write). "
        "Apply a change with dryRun: true, read `kubectl describe`, then set it back to false.",
    )
    deletionPolicy: DeletionPolicy = Field(
        default="Retain",
        description="What deleting the resource does: Retain keeps everything; Delete removes "
        "only what the operator created (CronJobs, the connection Secret), never data.",
    )

    @model_validator(mode="after")
    def _parts_present(self) -> LokifiStorageSpec:
        """Cross-part checks: a part that needs another part's connection says so."""
        problems = _cross_part_problems(self)
        if problems:
            raise spec_error("{problems}", problems="; ".join(problems))
        return self


def _cross_part_problems(spec: LokifiStorageSpec) -> list[str]:
    problems: list[str] = []
    if spec.backups is not None and (spec.postgres is None or spec.objectStorage is None):
        problems.append(
            "backups need postgres (the database to back up) and objectStorage (the S3 "
            "endpoint and credentials): add the missing part"
        )
    if spec.objectStorage is None and spec.postgres is not None:
        exporting = [
            table.name
            for table in spec.postgres.tables
            if table.retention is not None and table.retention.exportTo is not None
        ]
        if exporting:
            problems.append(
                f"postgres.tables ({', '.join(exporting)}): retention.exportTo needs "
                "objectStorage (the S3 endpoint and credentials): add objectStorage"
            )
    if spec.maintenance is not None and spec.maintenance.vacuum is not None and not spec.postgres:
        problems.append("maintenance.vacuum needs postgres: add postgres")
    if spec.monitoring is not None and spec.postgres is None:
        problems.append("monitoring measures the database: add postgres")
    written = spec.postgres.connectionSecret if spec.postgres is not None else None
    if written is not None and written.name in secrets_read(spec):
        problems.append(WRITTEN_NAME_CLASH_MESSAGE)
    return problems


def secrets_read(spec: LokifiStorageSpec) -> set[str]:
    """The names of the Secrets the operator reads for this spec (never writes)."""
    names: set[str] = set()
    if spec.postgres is not None:
        names.add(spec.postgres.primary.secretRef.name)
        names.update(replica.secretRef.name for replica in spec.postgres.replicas)
    if spec.redis is not None and spec.redis.passwordSecretRef is not None:
        names.add(spec.redis.passwordSecretRef.name)
    if spec.objectStorage is not None:
        names.add(spec.objectStorage.credentialsSecretRef.name)
    if spec.backups is not None and spec.backups.verifyTarget is not None:
        names.add(spec.backups.verifyTarget.secretRef.name)
    return names
