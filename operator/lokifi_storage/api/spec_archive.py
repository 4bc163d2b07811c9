"""What becomes of a table's old partitions: archived (and packed), exported, dropped.

Archive and retention are the only parts of the spec that move or destroy rows, so their
rules (archive before compress before drop, never drop unexported without saying so) are kept
together where they can be read in one place.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, model_validator

from lokifi_storage.api.names import BucketName, Identifier
from lokifi_storage.api.spec_base import (
    LIST_SET,
    SpecModel,
    StorageClass,
    cel,
    cel_rules,
    duplicates,
    spec_error,
)

MAX_SEGMENT_COLUMNS: Final = 8


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
    segmentBy: Annotated[list[Identifier], Field(json_schema_extra=LIST_SET)] = Field(
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
