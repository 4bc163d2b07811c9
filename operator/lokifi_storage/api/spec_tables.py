"""A managed table: its partitioning, and the rules that tie its parts together.

The table's own fields (partitionBy, subpartitionBy, premake) live here together with the
cross-field rules over indexes, archive and retention, which can only be checked once the
whole table is known; the indexes and the archive/retention blocks have modules of their own.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import ConfigDict, Field, model_validator

from lokifi_storage.api.names import Identifier, TableName, split_table_name
from lokifi_storage.api.spec_archive import ArchiveSpec, RetentionSpec
from lokifi_storage.api.spec_base import (
    Interval,
    SpecModel,
    cel,
    cel_rules,
    duplicates,
    list_map,
    spec_error,
)
from lokifi_storage.api.spec_indexes import IndexSpec

MAX_INDEXES: Final = 32
MAX_SUBPARTITIONS: Final = 256
# Partitions made ahead per table (premake x subpartitionBy.count): beyond this a premake pass
# is tens of thousands of CREATE TABLEs, which no chat table needs (12 months x 256 ranges fits).
MAX_PREMADE_PARTITIONS: Final = 4096
_BIGINT_MAX: Final = 2**63 - 1


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
        Field(json_schema_extra=list_map("name")),
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
