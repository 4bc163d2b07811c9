"""Export a partition past retention to S3, prove the object holds it, and only then drop it.

All of it happens in one database transaction that holds the partition in SHARE mode (readers
pass, writers wait), so the rows exported, counted and checksummed are exactly the rows the
DROP at its end removes:

  1. count the rows; stream `COPY (SELECT * FROM p) TO STDOUT (FORMAT csv, HEADER)` once through
     sha256 (S3 fixes an object's metadata when the upload starts, so the checksum is known
     first);
  2. stream the COPY again through zstd into a multipart upload whose metadata carries the row
     count and the checksum, hashing it again on the way; a different checksum aborts the upload
     (the COPYs ran in one snapshot, with synchronized scans off: they must agree);
  3. HEAD the object: it must exist with the size uploaded, the metadata written and the
     storage class asked for;
  4. DROP the partition, still inside the transaction.

A failure anywhere rolls back: the partition stays. When an earlier run uploaded the object but
did not drop (a crash, a lock timeout on the DROP), the next run finds the object, checks its
row count and checksum against a fresh read, and drops without uploading again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.partition_sql import copy_out_query, drop_sql
from lokifi_storage.clients.postgres import PartitionDatabase
from lokifi_storage.clients.s3_export import ExportStore, ObjectHead
from lokifi_storage.domain.partition_actions import ExportPartition
from lokifi_storage.jobs.compression import compressor

__all__ = ["EXPORT_CODEC", "ExportNotVerifiedError", "ExportResult", "export_and_drop"]

EXPORT_CODEC = "zstd"
FORMAT = "csv-header"


class ExportNotVerifiedError(ClientError):
    """The exported object could not be proven to hold the partition; nothing was dropped."""

    reason = Reason.EXPORT_NOT_VERIFIED


@dataclass(frozen=True)
class ExportResult:
    partition: str
    bucket: str
    key: str
    rows: int
    sha256: str
    stored_bytes: int
    csv_bytes: int
    uploaded: bool  # False: an earlier run's object was verified and reused


def _metadata(action: ExportPartition, rows: int, digest: str, csv_bytes: int) -> dict[str, str]:
    return {
        "row-count": str(rows),
        "sha256": digest,
        "csv-bytes": str(csv_bytes),
        "format": FORMAT,
        "compression": EXPORT_CODEC,
        "source": str(action.partition),
        "bounds": f"[{action.bound.lower}, {action.bound.upper})",
    }


def _digest(db: PartitionDatabase, action: ExportPartition) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    for chunk in db.copy_out(copy_out_query(action.partition)):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def _compressed(db: PartitionDatabase, action: ExportPartition, expected: str) -> Iterator[bytes]:
    hasher = hashlib.sha256()
    codec = compressor(EXPORT_CODEC)
    for chunk in db.copy_out(copy_out_query(action.partition)):
        hasher.update(chunk)
        out = codec.compress(chunk)
        if out:
            yield out
    tail = codec.flush()
    if tail:
        yield tail
    if hasher.hexdigest() != expected:
        # Raised before the upload completes: the multipart upload is aborted.
        raise ExportNotVerifiedError(
            f"{action.partition}: two reads in one snapshot gave different data; not exported"
        )


def _verify(
    head: ObjectHead | None,
    action: ExportPartition,
    rows: int,
    digest: str,
    stored: int | None,
) -> None:
    where = f"s3://{action.bucket}/{action.key}"
    if head is None:
        raise ExportNotVerifiedError(f"{where} is not there after the upload; nothing dropped")
    problems = []
    if stored is not None and head.size != stored:
        problems.append(f"size {head.size} instead of {stored}")
    if head.metadata.get("row-count") != str(rows):
        problems.append(f"row-count {head.metadata.get('row-count')} instead of {rows}")
    if head.metadata.get("sha256") != digest:
        problems.append("sha256 differs from the partition's")
    if head.storage_class != action.storage_class:
        problems.append(f"storage class {head.storage_class} instead of {action.storage_class}")
    if problems:
        raise ExportNotVerifiedError(f"{where}: {', '.join(problems)}; nothing dropped")


def export_and_drop(
    db: PartitionDatabase,
    store: ExportStore,
    action: ExportPartition,
    *,
    before_drop: Callable[[ExportResult], None] | None = None,
) -> ExportResult:
    """Export `action.partition`, verify the object, drop the partition: all or nothing.

    `before_drop` runs between the verification and the DROP (tests inject failures there).
    """
    with db.locked_snapshot(action.partition):
        rows = db.count_rows(action.partition)
        digest, csv_bytes = _digest(db, action)
        existing = store.head(action.key)
        reuse = (
            existing is not None
            and existing.metadata.get("row-count") == str(rows)
            and existing.metadata.get("sha256") == digest
        )
        stored: int | None = None
        if not reuse:
            stored = store.upload(
                action.key,
                _compressed(db, action, digest),
                metadata=_metadata(action, rows, digest, csv_bytes),
                storage_class=action.storage_class,
            )
        head = store.head(action.key)
        _verify(head, action, rows, digest, stored)
        assert head is not None
        result = ExportResult(
            partition=str(action.partition),
            bucket=action.bucket,
            key=action.key,
            rows=rows,
            sha256=digest,
            stored_bytes=head.size,
            csv_bytes=csv_bytes,
            uploaded=not reuse,
        )
        if before_drop is not None:
            before_drop(result)
        db.execute_write(drop_sql(action.partition))
    return result
