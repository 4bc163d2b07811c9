"""Where a partition export lives in the bucket, what its manifest says, and the mark a kept
partition carries. Pure.

Keys carry the identity of the source, so that two servers whose databases share a name (a
staging and a production `lokifi`) never address the same object:

    <prefix><system_identifier>/<database>/<schema>/<partition>.csv.zst       the rows, CSV + zstd
    <prefix><system_identifier>/<database>/<schema>/<partition>.manifest.json  rows, digests, source

`system_identifier` is PostgreSQL's own id of the cluster (pg_control_system()), fixed at initdb
and kept by its streaming replicas, so a failover keeps the key while another server never gets
it. Segments are percent-encoded where a name holds a character that is not safe in a key.

Exports written by earlier versions (`<prefix><database>/<schema>/<partition>.csv.zst`, no
source identity) are never read, overwritten or deleted: their partitions were dropped after
their own verification, and a partition still present is exported again under the new layout.

When an export is refused because of what is already in the bucket (an object that is not this
partition's, or one that fails its read-back), the partition is kept and its COMMENT says why,
`lokifi-storage export kept (<Reason>): <message>`. The catalog query the reconciler already
runs reads it, so PartitionsReady names the reason and the key without any other channel; the
mark goes with the partition when a later export succeeds and drops it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = [
    "FORMAT",
    "KEPT_MARK",
    "ExportManifest",
    "ManifestProblem",
    "export_key",
    "kept_mark",
    "manifest_key",
    "parse_kept_mark",
]

FORMAT = "lokifi-export/1"
KEPT_MARK = "lokifi-storage export kept"
_MARK = re.compile(r"^lokifi-storage export kept \((?P<reason>[A-Za-z]+)\): (?P<message>.*)$", re.S)
_DATA_SUFFIX = ".csv.zst"
_MANIFEST_SUFFIX = ".manifest.json"


def _segment(name: str) -> str:
    return quote(name, safe="")


def _base(prefix: str, source: str, database: str, schema: str, partition: str) -> str:
    head = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    parts = [source, database, schema, partition]
    return head + "/".join(_segment(p) for p in parts if p)


def export_key(prefix: str, source: str, database: str, schema: str, partition: str) -> str:
    """The data object's key (`source` is the server's system_identifier)."""
    return _base(prefix, source, database, schema, partition) + _DATA_SUFFIX


def manifest_key(data_key: str) -> str:
    """The manifest beside a data key."""
    if not data_key.endswith(_DATA_SUFFIX):
        raise ValueError(f"{data_key!r} is not an export key")
    return data_key[: -len(_DATA_SUFFIX)] + _MANIFEST_SUFFIX


class ManifestProblem(ValueError):
    """A manifest that is not one of ours, or not about this partition."""


@dataclass(frozen=True)
class ExportManifest:
    """What an export holds: the source, the rows, and digests of the CSV and of the object."""

    source: str  # system_identifier
    database: str
    partition: str  # schema.name
    bounds: str
    rows: int
    csv_sha256: str
    csv_bytes: int
    object_sha256: str
    object_bytes: int
    compression: str
    storage_class: str
    exported_at: str

    def document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "source": {
                "systemIdentifier": self.source,
                "database": self.database,
                "partition": self.partition,
                "bounds": self.bounds,
            },
            "rows": self.rows,
            "csvSha256": self.csv_sha256,
            "csvBytes": self.csv_bytes,
            "objectSha256": self.object_sha256,
            "objectBytes": self.object_bytes,
            "compression": self.compression,
            "storageClass": self.storage_class,
            "exportedAt": self.exported_at,
        }

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> ExportManifest:
        if document.get("format") != FORMAT:
            raise ManifestProblem(f"not an export manifest (format {document.get('format')!r})")
        try:
            source = document["source"]
            return cls(
                source=str(source["systemIdentifier"]),
                database=str(source["database"]),
                partition=str(source["partition"]),
                bounds=str(source.get("bounds", "")),
                rows=int(document["rows"]),
                csv_sha256=str(document["csvSha256"]),
                csv_bytes=int(document["csvBytes"]),
                object_sha256=str(document["objectSha256"]),
                object_bytes=int(document["objectBytes"]),
                compression=str(document["compression"]),
                storage_class=str(document["storageClass"]),
                exported_at=str(document.get("exportedAt", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ManifestProblem(f"damaged export manifest: {error}") from error

    def same_source(self, source: str, database: str, partition: str) -> bool:
        return (self.source, self.database, self.partition) == (source, database, partition)


def kept_mark(reason: str, message: str) -> str:
    """The COMMENT a kept partition carries."""
    return f"{KEPT_MARK} ({reason}): {message}"


def parse_kept_mark(comment: str | None) -> tuple[str, str] | None:
    """(reason, message) of a kept mark; None for any other comment."""
    if not comment:
        return None
    match = _MARK.match(comment)
    return None if match is None else (match["reason"], match["message"])
