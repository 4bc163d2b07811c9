"""The `spec.postgres` part: primary, replicas, pool settings and the managed tables."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, model_validator

from lokifi_storage.api.names import (
    BucketName,
    DnsLabel,
    DnsSubdomain,
    Identifier,
    IndexColumn,
    TableName,
    index_column_name,
    split_table_name,
)
from lokifi_storage.api.spec_base import (
    Interval,
    SecretKeyRef,
    SpecModel,
    StorageClass,
    cel,
    cel_rules,
    duplicates,
    spec_error,
)

MAX_TABLES: Final = 100
MAX_INDEXES: Final = 32
MAX_REPLICAS: Final = 16
# PostgreSQL's INDEX_MAX_KEYS.
MAX_INDEX_COLUMNS: Final = 32
MAX_SUBPARTITIONS: Final = 256
MAX_SEGMENT_COLUMNS: Final = 8
# Partitions made ahead per table (premake x subpartitionBy.count): beyond this a premake pass
# is tens of thousands of CREATE TABLEs, which no chat table needs (12 months x 256 ranges fits).
MAX_PREMADE_PARTITIONS: Final = 4096
_BIGINT_MAX: Final = 2**63 - 1

_LIST_MAP_BY_NAME: Final = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}


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


class PartitionBySpec(SpecModel):
    """Time-range partitioning of a table on a timestamp column."""

    column: Identifier = Field(description="The table's RANGE partition key column.")
    interval: Interval = Field(
        description="Width of each partition, aligned to the UTC calendar: "
        "day, week (Monday), month, quarter or year."
    )


class SubpartitionBySpec(SpecModel):
    """Splits each time partition into integer ranges of a second column (e.g. user_id)."""

    column: Identifier = Field(description="Integer column each time partition is ranged on.")
    rangeSize: int = Field(ge=1, description="Width of each sub-partition's range.")
    count: int = Field(
        ge=1,
        le=MAX_SUBPARTITIONS,
        description="Number of sub-partitions, covering [0, count*rangeSize); values outside "
        "go to each time partition's DEFAULT sub-partition.",
    )

    @model_validator(mode="after")
    def _range_fits_bigint(self) -> SubpartitionBySpec:
        if self.rangeSize * self.count > _BIGINT_MAX:
            raise spec_error(
                "rangeSize*count ({total}) does not fit a bigint; lower rangeSize or count",
                total=self.rangeSize * self.count,
            )
        return self


class FullTextSpec(SpecModel):
    """A GIN index on to_tsvector(language, column)."""

    column: Identifier = Field(description="Text column to index.")
    language: Identifier = Field(
        default="english", description="Text-search configuration, e.g. english or simple."
    )


class WhereSpec(SpecModel):
    """A partial-index predicate: column = value.

    `equals` is true/false, a whole number or a string; a list, an object or a fraction is
    refused.
    """

    column: Identifier = Field(description="Column compared in the predicate.")
    equals: bool | int | str = Field(
        description="Value the column must equal: true/false, a whole number or a string.",
        # Three scalar types fit a structural schema only as an untyped field, which CEL cannot
        # see; these keywords keep it a scalar instead (each applies only to its own JSON type).
        json_schema_extra={
            "x-kubernetes-preserve-unknown-fields": True,
            "maxProperties": 0,
            "maxItems": 0,
            "multipleOf": 1,
            "not": {"enum": [{}, []]},
        },
    )


class IndexSpec(SpecModel):
    """An index kept on the parent table and every partition. Give exactly one of `columns`
    (a B-tree index) or `fullText` (a GIN index)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel(
                "has(self.fullText) != (has(self.columns) && size(self.columns) > 0)",
                "an index needs exactly one of columns (B-tree) or fullText (GIN)",
            ),
        )
    )

    name: Identifier = Field(
        description="Index name on the parent; partitions get derived names. PostgreSQL index "
        "names are unique per schema, so two tables of one schema cannot share one."
    )
    columns: list[IndexColumn] = Field(
        default_factory=list,
        max_length=MAX_INDEX_COLUMNS,
        description='Key columns in order, each optionally followed by " ASC" or " DESC" '
        'and " NULLS FIRST" or " NULLS LAST".',
    )
    fullText: FullTextSpec | None = Field(default=None, description="Full-text GIN index.")
    where: WhereSpec | None = Field(default=None, description="Makes the index partial.")

    @model_validator(mode="after")
    def _one_kind(self) -> IndexSpec:
        if bool(self.columns) == (self.fullText is not None):
            raise spec_error(
                "index {name!r} needs exactly one of columns (a B-tree index) or fullText "
                "(a GIN index); write one and remove the other",
                name=self.name,
            )
        repeated = duplicates(index_column_name(key) for key in self.columns)
        if repeated:
            raise spec_error(
                "index {name!r} lists column(s) {repeated} more than once in columns",
                name=self.name,
                repeated=", ".join(repeated),
            )
        return self


class ArchiveSpec(SpecModel):
    """Moves old partitions to an archive table: metadata work (DETACH + ATTACH), no row
    copying. The archive table is `<schema>.<table>`.

    With `compressAfterDays`, older months are packed into `<schema>.<table>_packed` (rows of
    one array per column, whole `segmentBy` groups side by side) and read back, whatever their
    form, through
    the view `<schema>.<table>_rows` (every archived row, the table's columns and types) or
    the function `<schema>.<table>_group(<segmentBy columns>)` (one group, in time order).
    An old thread: `SELECT * FROM ai_messages WHERE user_id = $1 AND thread_id = $2 UNION ALL
    SELECT * FROM archive.ai_messages_group($1, $2) ORDER BY created_at`."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel(
                "!has(self.compressAfterDays) || self.afterDays < self.compressAfterDays",
                "archive.compressAfterDays must be greater than archive.afterDays: partitions "
                "are compressed after they are archived",
                field_path=".compressAfterDays",
            ),
        )
    )

    afterDays: int = Field(ge=1, description="Partitions wholly older than this are archived.")
    schema_: Identifier = Field(
        default="archive",
        alias="schema",
        description="Schema of the archive table; must differ from the table's own schema.",
    )
    compressAfterDays: int | None = Field(
        default=None,
        ge=1,
        description="Archived months older than this are packed by `lokifi-storage partitions "
        "compress` (verified row by row before the plain month is dropped); greater than "
        "afterDays.",
    )
    segmentBy: Annotated[
        list[Identifier], Field(json_schema_extra={"x-kubernetes-list-type": "set"})
    ] = Field(
        default_factory=lambda: ["user_id", "thread_id"],
        min_length=1,
        max_length=MAX_SEGMENT_COLUMNS,
        description="Columns whose equal values make one group (e.g. one thread): rows are "
        "packed in (segmentBy, partition key) order, a group is never split across stored "
        "rows (up to 1000 rows), and <schema>.<table>_group(<these columns>) reads one. Must "
        "not contain the partition key.",
    )
    packRows: int = Field(
        default=512,
        ge=1,
        le=10000,
        description="Rows per stored row of a packed month: whole segmentBy groups side by "
        "side until this many (1: each group alone). More rows compress better (pglz looks back "
        "4 kB) and make reading one group decompress more.",
    )
    packCompression: Literal["pglz", "lz4"] = Field(
        default="pglz",
        description="TOAST compression of the packed arrays: pglz (smaller, the measured "
        "default) or lz4 (faster to pack and read).",
    )

    @model_validator(mode="after")
    def _compress_after_archive(self) -> ArchiveSpec:
        repeated = duplicates(self.segmentBy)
        if repeated:
            raise spec_error(
                "archive.segmentBy lists {repeated} more than once; list each column once",
                repeated=", ".join(repeated),
            )
        if self.compressAfterDays is not None and self.compressAfterDays <= self.afterDays:
            raise spec_error(
                "archive.compressAfterDays ({compress}) must be greater than archive.afterDays "
                "({after}): partitions are compressed after they are archived",
                compress=self.compressAfterDays,
                after=self.afterDays,
            )
        return self


class ExportToSpec(SpecModel):
    """Where expired partitions are exported before they are dropped."""

    bucket: BucketName = Field(description="S3 bucket receiving the exported partition.")
    storageClass: StorageClass = Field(default="DEEP_ARCHIVE", description="Object storage class.")
    prefix: str = Field(default="", max_length=1024, description="Key prefix for exported objects.")


class RetentionSpec(SpecModel):
    """When partitions are dropped, and where their data goes first."""

    dropAfterDays: int = Field(ge=1, description="Partitions wholly older than this are dropped.")
    exportTo: ExportToSpec | None = Field(
        default=None,
        description="Export to S3 (needs spec.objectStorage for credentials), verified, "
        "before the drop.",
    )
    dropWithoutExport: bool = Field(
        default=False,
        description="Without exportTo, partitions are only dropped when this is true.",
    )


_TABLE_RULES: Final = cel_rules(
    cel(
        f"!has(self.subpartitionBy) || self.premake * self.subpartitionBy.count "
        f"<= {MAX_PREMADE_PARTITIONS}",
        f"premake x subpartitionBy.count is the number of partitions made ahead; at most "
        f"{MAX_PREMADE_PARTITIONS}: lower premake or subpartitionBy.count",
        field_path=".premake",
    ),
    cel(
        "has(self.partitionBy) || "
        "(!has(self.subpartitionBy) && !has(self.archive) && !has(self.retention))",
        "subpartitionBy, archive and retention work on partitions: add partitionBy",
    ),
    cel(
        "!has(self.partitionBy) || !has(self.subpartitionBy) || "
        "self.partitionBy.column != self.subpartitionBy.column",
        "subpartitionBy.column must differ from partitionBy.column",
        field_path=".subpartitionBy.column",
    ),
    cel(
        "!has(self.archive) || !has(self.retention) || "
        "self.archive.afterDays < self.retention.dropAfterDays",
        "retention.dropAfterDays must be greater than archive.afterDays: partitions are "
        "archived before they are dropped",
        field_path=".retention.dropAfterDays",
    ),
    cel(
        "!has(self.archive) || !has(self.archive.compressAfterDays) || !has(self.retention) "
        "|| self.archive.compressAfterDays < self.retention.dropAfterDays",
        "retention.dropAfterDays must be greater than archive.compressAfterDays: partitions "
        "are compressed before they are dropped",
        field_path=".retention.dropAfterDays",
    ),
    cel(
        "!has(self.archive) || !has(self.partitionBy) || !has(self.archive.segmentBy) || "
        "!self.archive.segmentBy.exists(c, c == self.partitionBy.column)",
        "archive.segmentBy must not contain partitionBy.column: rows are ordered by it "
        "inside each group",
        field_path=".archive.segmentBy",
    ),
    cel(
        "!has(self.archive) || !has(self.archive.schema) || self.archive.schema != "
        "(self.name.contains('.') ? self.name.split('.')[0] : 'public')",
        "archive.schema must differ from the table's own schema",
        field_path=".archive.schema",
    ),
)


class TableSpec(SpecModel):
    """A table the operator keeps partitioned and indexed. Days are counted from the end of a
    partition's range: archive.afterDays < archive.compressAfterDays < retention.dropAfterDays."""

    model_config = ConfigDict(json_schema_extra=_TABLE_RULES)

    name: TableName = Field(
        description="[schema.]table (schema defaults to public); must exist, and be "
        "PARTITION BY RANGE (partitionBy.column) when partitionBy is set."
    )
    partitionBy: PartitionBySpec | None = Field(default=None, description="Time partitioning.")
    premake: int = Field(
        default=3, ge=1, le=366, description="Future partitions kept ready, at least 1."
    )
    subpartitionBy: SubpartitionBySpec | None = Field(
        default=None, description="Integer sub-ranges inside each time partition."
    )
    indexes: Annotated[
        list[IndexSpec],
        Field(json_schema_extra=_LIST_MAP_BY_NAME),
    ] = Field(
        default_factory=list,
        max_length=MAX_INDEXES,
        description="Indexes to keep; names unique.",
    )
    archive: ArchiveSpec | None = Field(default=None, description="Archival of old partitions.")
    retention: RetentionSpec | None = Field(default=None, description="Dropping of old partitions.")

    @property
    def schema_name(self) -> str:
        """The table's schema: the part before the dot, else public."""
        return split_table_name(self.name)[0]

    @model_validator(mode="after")
    def _consistent(self) -> TableSpec:
        problems = _table_problems(self)
        if problems:
            raise spec_error(
                "table {name!r}: {problems}", name=self.name, problems="; ".join(problems)
            )
        return self


def _table_problems(table: TableSpec) -> list[str]:
    problems: list[str] = []
    if table.partitionBy is None:
        needs = [
            field
            for field, value in (
                ("subpartitionBy", table.subpartitionBy),
                ("archive", table.archive),
                ("retention", table.retention),
            )
            if value is not None
        ]
        if needs:
            problems.append(f"{', '.join(needs)} work(s) on partitions: add partitionBy")
    elif (
        table.subpartitionBy is not None and table.subpartitionBy.column == table.partitionBy.column
    ):
        problems.append("subpartitionBy.column must differ from partitionBy.column")
    if table.subpartitionBy is not None:
        ahead = table.premake * table.subpartitionBy.count
        if ahead > MAX_PREMADE_PARTITIONS:
            problems.append(
                f"premake x subpartitionBy.count ({ahead}) is the number of partitions made "
                f"ahead; at most {MAX_PREMADE_PARTITIONS}: lower premake or subpartitionBy.count"
            )
    if table.archive is not None and table.retention is not None:
        drop = table.retention.dropAfterDays
        if drop <= table.archive.afterDays:
            problems.append(
                f"retention.dropAfterDays ({drop}) must be greater than archive.afterDays "
                f"({table.archive.afterDays}): partitions are archived before they are dropped"
            )
        compress = table.archive.compressAfterDays
        if compress is not None and drop <= compress:
            problems.append(
                f"retention.dropAfterDays ({drop}) must be greater than "
                f"archive.compressAfterDays ({compress}): partitions are compressed before "
                "they are dropped"
            )
    if (
        table.archive is not None
        and table.partitionBy is not None
        and table.partitionBy.column in table.archive.segmentBy
    ):
        problems.append(
            f"archive.segmentBy must not contain partitionBy.column ({table.partitionBy.column})"
            ": rows are ordered by it inside each group"
        )
    if table.archive is not None and table.archive.schema_ == table.schema_name:
        problems.append(
            f"archive.schema ({table.archive.schema_}) must differ from the table's own "
            "schema; use e.g. archive"
        )
    repeated = duplicates(index.name for index in table.indexes)
    if repeated:
        problems.append(f"index name(s) {', '.join(repeated)} used more than once")
    return problems


class PostgresSpec(SpecModel):
    """PostgreSQL primary, replicas, pool settings and managed tables."""

    primary: PrimarySpec = Field(description="The primary that takes writes.")
    replicas: Annotated[list[ReplicaSpec], Field(json_schema_extra=_LIST_MAP_BY_NAME)] = Field(
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
    tables: Annotated[list[TableSpec], Field(json_schema_extra=_LIST_MAP_BY_NAME)] = Field(
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
