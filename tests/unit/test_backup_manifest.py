"""The backup manifest: written with sorted per-table counts, read back, compared with a restore."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lokifi_storage.domain.backup_manifest import (
    ManifestError,
    TableRows,
    build_manifest,
    compare_counts,
    tables,
)

T = datetime(2026, 2, 5, 2, 0, tzinfo=UTC)


def _manifest(counts: list[TableRows]) -> dict[str, object]:
    return build_manifest(
        dump_key="b/p/daily/x.dump.zst",
        schedule="daily",
        compression="zstd",
        database="app",
        server_version="15.14",
        pg_dump_version="15.14",
        storage_class="STANDARD",
        started_at=T,
        finished_at=T,
        size_bytes=10,
        sha256="ab",
        dump_bytes=20,
        parts=1,
        counts=counts,
    )


def test_a_manifest_round_trips_its_table_counts() -> None:
    doc = _manifest([TableRows("public", "b", 2), TableRows("archive", "a", 1)])
    assert doc["startedAt"] == "2026-02-05T02:00:00.000Z"
    assert tables(doc) == {"archive.a": 1, "public.b": 2}


def test_a_foreign_or_damaged_manifest_is_refused() -> None:
    with pytest.raises(ManifestError, match="format"):
        tables({"format": "other"})
    with pytest.raises(ManifestError, match="damaged"):
        tables({"format": "lokifi-backup/1", "tables": [{"schema": "x"}]})


def test_identical_counts_have_no_differences() -> None:
    assert compare_counts({"public.a": 3}, {"public.a": 3}) == []


def test_every_kind_of_difference_is_named() -> None:
    problems = compare_counts(
        {"public.a": 3, "public.gone": 1, "public.same": 5},
        {"public.a": 2, "public.extra": 4, "public.same": 5},
    )
    assert problems == [
        "public.a: 2 rows restored, manifest has 3",
        "public.extra: in the restore but not in the manifest (4 rows)",
        "public.gone: missing from the restore (manifest has 1 rows)",
    ]
