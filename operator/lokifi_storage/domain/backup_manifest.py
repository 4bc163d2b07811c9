"""The manifest written beside every backup, and the comparison a verify makes against it.

The manifest is JSON (`<stamp>.manifest.json`, see backup_catalog for why it is a sidecar):

    {"format": "lokifi-backup/1", "dumpKey": ..., "schedule": ..., "compression": ...,
     "database": ..., "serverVersion": ..., "pgDumpVersion": ..., "storageClass": ...,
     "startedAt": ..., "finishedAt": ..., "sizeBytes": <object bytes>, "sha256": <of the object>,
     "dumpBytes": <uncompressed pg_dump bytes>, "parts": ...,
     "tables": [{"schema": ..., "table": ..., "rows": ...}, ...]}

Row counts are per table (each partition is a table), taken in the snapshot pg_dump dumped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lokifi_storage.api.timestamps import rfc3339

__all__ = ["FORMAT", "ManifestError", "TableRows", "build_manifest", "compare_counts", "tables"]

FORMAT = "lokifi-backup/1"


class ManifestError(ValueError):
    """A manifest this tool cannot read: not ours, or damaged."""


@dataclass(frozen=True)
class TableRows:
    """Rows of one table (partitions are tables of their own), as counted in the dump's snapshot
    and as written to and read back from the manifest: one record for both, so a verify compares
    like with like."""

    schema: str
    table: str
    rows: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def build_manifest(
    *,
    dump_key: str,
    schedule: str,
    compression: str,
    database: str,
    server_version: str,
    pg_dump_version: str,
    storage_class: str,
    started_at: datetime,
    finished_at: datetime,
    size_bytes: int,
    sha256: str,
    dump_bytes: int,
    parts: int,
    counts: Iterable[TableRows],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "dumpKey": dump_key,
        "schedule": schedule,
        "compression": compression,
        "database": database,
        "serverVersion": server_version,
        "pgDumpVersion": pg_dump_version,
        "storageClass": storage_class,
        "startedAt": rfc3339(started_at, "milliseconds"),
        "finishedAt": rfc3339(finished_at, "milliseconds"),
        "sizeBytes": size_bytes,
        "sha256": sha256,
        "dumpBytes": dump_bytes,
        "parts": parts,
        "tables": [
            {"schema": c.schema, "table": c.table, "rows": c.rows}
            for c in sorted(counts, key=lambda c: (c.schema, c.table))
        ],
    }


def tables(manifest: Mapping[str, Any]) -> dict[str, int]:
    """`schema.table` -> rows, from a manifest; ManifestError when it is not one of ours."""
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"unknown manifest format {manifest.get('format')!r}")
    result: dict[str, int] = {}
    try:
        for entry in manifest["tables"]:
            result[f"{entry['schema']}.{entry['table']}"] = int(entry["rows"])
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestError(f"manifest table list is damaged: {error}") from error
    return result


def compare_counts(expected: Mapping[str, int], actual: Mapping[str, int]) -> list[str]:
    """Every difference between the manifest's counts and a restored database's, as sentences."""
    problems: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(name), actual.get(name)
        if want is None:
            problems.append(f"{name}: in the restore but not in the manifest ({got} rows)")
        elif got is None:
            problems.append(f"{name}: missing from the restore (manifest has {want} rows)")
        elif want != got:
            problems.append(f"{name}: {got} rows restored, manifest has {want}")
    return problems
