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

__all__ = ["FORMAT", "ManifestError", "TableCount", "build_manifest", "compare_counts", "tables"]

FORMAT = "lokifi-backup/1"


class ManifestError(ValueError):
    """A manifest this tool cannot read: not ours, or damaged."""


@dataclass(frozen=True)
class TableCount:
    schema: str
    table: str
    rows: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    counts: Iterable[TableCount],
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
        "startedAt": _iso(started_at),
        "finishedAt": _iso(finished_at),
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
