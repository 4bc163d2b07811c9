"""The `spec.postgres` part: primary, replicas, pool settings and the list of managed tables.

What each table holds is in spec_tables (with spec_indexes and spec_archive); this module keeps
the connection side and the rules across tables (unique names, index names unique per schema).
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, model_validator

from lokifi_storage.api.names import DnsLabel, DnsSubdomain, split_table_name
from lokifi_storage.api.spec_base import SecretKeyRef, SpecModel, duplicates, list_map, spec_error
from lokifi_storage.api.spec_tables import TableSpec

MAX_TABLES: Final = 100
MAX_REPLICAS: Final = 16


class PrimarySpec(SpecModel):
    """The PostgreSQL primary that takes writes."""

    secretRef: SecretKeyRef = Field(
        description="Secret key holding the primary's URL: postgresql://user:pass@host:5432/db."
    )


class ReplicaSpec(SpecModel):
    """A streaming read replica. Only healthy replicas are named in the connection Secret."""

    name: DnsLabel = Field(description="Stable name of the replica, used in status and events.")
    secretRef: SecretKeyRef = Field(description="Secret key holding the replica's URL.")
    maxLagSeconds: float = Field(
        default=30,
        gt=0,
        le=86400,
        description="A replica lagging more than this many seconds is left out of the Secret.",
    )


class PoolSpec(SpecModel):
    """Connection-pool settings handed to the application through the connection Secret."""

    size: int = Field(default=20, ge=1, le=1000, description="DATABASE_POOL_SIZE.")
    maxOverflow: int = Field(default=30, ge=0, le=1000, description="DATABASE_MAX_OVERFLOW.")
    timeoutSeconds: int = Field(
        default=30, ge=1, le=3600, description="DATABASE_POOL_TIMEOUT, in seconds."
    )
    recycleSeconds: int = Field(
        default=3600,
        ge=-1,
        le=7 * 86400,
        description="DATABASE_POOL_RECYCLE, in seconds; -1 never recycles connections.",
    )


class ConnectionSecretSpec(SpecModel):
    """The Secret the operator writes for application pods (DATABASE_URL and friends)."""

    name: DnsSubdomain = Field(
        description="Name of the Secret the operator creates and keeps current."
    )
    driver: str = Field(
        default="postgresql",
        pattern=r"^postgres(ql)?(\+[a-z0-9_]+)?$",
        max_length=64,
        description=(
            "URL scheme written into the URLs: postgresql, or postgresql+<driver> such as "
            "postgresql+asyncpg for SQLAlchemy."
        ),
    )


class PostgresSpec(SpecModel):
    """PostgreSQL primary, replicas, pool settings and managed tables."""

    primary: PrimarySpec = Field(description="The primary that takes writes.")
    replicas: Annotated[list[ReplicaSpec], Field(json_schema_extra=list_map("name"))] = Field(
        default_factory=list,
        max_length=MAX_REPLICAS,
        description="Streaming read replicas; names unique.",
    )
    pool: PoolSpec = Field(
        default_factory=PoolSpec, description="Pool settings written into the connection Secret."
    )
    connectionSecret: ConnectionSecretSpec | None = Field(
        default=None,
        description="The Secret written for application pods; none is written when omitted.",
    )
    tables: Annotated[list[TableSpec], Field(json_schema_extra=list_map("name"))] = Field(
        default_factory=list,
        max_length=MAX_TABLES,
        description="Tables kept partitioned and indexed; names unique.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> PostgresSpec:
        problems: list[str] = []
        repeated = duplicates(replica.name for replica in self.replicas)
        if repeated:
            problems.append(f"replicas: name(s) {', '.join(repeated)} used more than once")
        qualified = [".".join(split_table_name(table.name)) for table in self.tables]
        repeated = duplicates(qualified)
        if repeated:
            problems.append(
                f"tables: {', '.join(repeated)} declared more than once (a bare name means "
                "public.<name>); merge the entries"
            )
        index_names = [
            f"{table.schema_name}.{index.name}" for table in self.tables for index in table.indexes
        ]
        repeated = duplicates(index_names)
        if repeated:
            problems.append(
                f"tables[*].indexes: index name(s) {', '.join(repeated)} used on more than one "
                "table of the same schema; PostgreSQL index names are unique per schema"
            )
        if problems:
            raise spec_error("{problems}", problems="; ".join(problems))
        return self

    def table(self, name: str) -> TableSpec | None:
        """The declared table `name` (`t` and `public.t` are the same table), or None."""
        wanted = split_table_name(name)
        return next((t for t in self.tables if split_table_name(t.name) == wanted), None)
