"""Export a partition past retention to S3, prove from the bytes in S3 that it holds the
partition, and only then drop it. An export never replaces or deletes an object it did not
just write.

All of it happens in one database transaction that holds the partition in SHARE mode (readers
pass, writers wait), so the rows exported are exactly the rows the DROP at its end removes:

  1. the key is free (HEAD): one read of the partition, `COPY (SELECT * FROM p) TO STDOUT
     (FORMAT csv, HEADER)`, streamed through zstd into a multipart upload completed with
     `If-None-Match: *`, hashing the CSV and the object on the way; COPY's own row count;
  2. the manifest beside it (rows, both digests, source identity), also create-only;
  3. read back: GET the object, check its SHA-256 and size, decompress it (zstd checks its
     frames), check the CSV's SHA-256 and count its records: all must match the manifest;
  4. GLACIER/DEEP_ARCHIVE: the object was uploaded in STANDARD for step 3; it is now copied onto
     itself in the target class, if its ETag is still the one read back;
  5. HEAD: the storage class asked for, the size of the manifest; then DROP, still inside the
     transaction.

A failure anywhere rolls back: the partition stays. When the key is already taken, the object
is trusted only if it is this partition's: a manifest naming this source (system_identifier,
database, partition) whose row count and CSV digest equal a fresh read of the partition, and
bytes that pass the read-back (step 3). Anything else is a conflict: nothing is written, the
partition is kept, and its COMMENT records why (domain/partitions/export_layout.py), which
PartitionsReady reports with the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from psycopg import sql

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.timestamps import rfc3339
from lokifi_storage.clients.errors import ClientError, Conflict, NotFound
from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.clients.s3_export import ARCHIVE_CLASSES, ExportStore, ObjectHead
from lokifi_storage.domain.partitions.actions import ExportPartition
from lokifi_storage.domain.partitions.export_layout import (
    ExportManifest,
    ManifestProblem,
    kept_mark,
)
from lokifi_storage.domain.partitions.pack_steps import export_copy_query
from lokifi_storage.domain.partitions.statements import drop_sql
from lokifi_storage.jobs.compression import CorruptStreamError, compressor, decompressor

__all__ = [
    "EXPORT_CODEC",
    "CsvRecords",
    "ExportConflictError",
    "ExportNotVerifiedError",
    "ExportResult",
    "export_and_drop",
]

EXPORT_CODEC = "zstd"
FORMAT = "csv-header"
VERIFIED_META = "verified-csv-sha256"  # set by the copy into an archive class, after step 3


class ExportNotVerifiedError(ClientError):
    """The bytes in S3 could not be proven to hold the partition; nothing was dropped."""

    reason = Reason.EXPORT_NOT_VERIFIED


class ExportConflictError(ClientError):
    """The key holds an object that is not this partition's export; nothing was written."""

    reason = Reason.EXPORT_CONFLICT


@dataclass(frozen=True)
class ExportResult:
    partition: str
    bucket: str
    key: str
    manifest_key: str
    rows: int
    sha256: str  # of the CSV
    stored_bytes: int
    csv_bytes: int
    uploaded: bool  # False: an earlier run's object was verified and reused


class CsvRecords:
    """Counts the records of PostgreSQL's CSV output as it streams.

    A newline ends a record unless it is inside a quoted field; a quote inside a field is
    doubled, so the quote state flips at every quote byte and two in a row cancel. Neither byte
    occurs inside a multi-byte UTF-8 character.
    """

    def __init__(self) -> None:
        self.quoted = False
        self.newlines = 0

    def feed(self, data: bytes) -> None:
        pieces = data.split(b'"')
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            if not self.quoted:
                self.newlines += piece.count(b"\n")
            if i < last:
                self.quoted = not self.quoted

    def rows(self, *, header: bool = True) -> int:
        return self.newlines - (1 if header and self.newlines else 0)


@dataclass
class _Digest:
    csv: Any  # hashlib's sha256 objects
    obj: Any
    csv_bytes: int = 0
    obj_bytes: int = 0
    rows: int = 0

    @classmethod
    def new(cls) -> _Digest:
        return cls(hashlib.sha256(), hashlib.sha256())


def _where(action: ExportPartition, key: str | None = None) -> str:
    return f"s3://{action.bucket}/{key or action.key}"


def _compressed(db: PartitionDatabase, action: ExportPartition, digest: _Digest) -> Iterator[bytes]:
    codec = compressor(EXPORT_CODEC)
    for chunk in db.copy_out(export_copy_query(action)):
        digest.csv.update(chunk)
        digest.csv_bytes += len(chunk)
        out = codec.compress(chunk)
        if out:
            digest.obj.update(out)
            digest.obj_bytes += len(out)
            yield out
    tail = codec.flush()
    if tail:
        digest.obj.update(tail)
        digest.obj_bytes += len(tail)
        yield tail


def _measure(db: PartitionDatabase, action: ExportPartition) -> _Digest:
    """One read of the partition, hashed and counted, to compare with an earlier export."""
    digest = _Digest.new()
    for chunk in db.copy_out(export_copy_query(action)):
        digest.csv.update(chunk)
        digest.csv_bytes += len(chunk)
    digest.rows = db.last_copy_rows
    return digest


def _manifest(
    action: ExportPartition, digest: _Digest, clock: Callable[[], datetime]
) -> ExportManifest:
    return ExportManifest(
        source=action.source,
        database=action.database,
        partition=str(action.partition),
        bounds=f"[{action.bound.lower}, {action.bound.upper})",
        rows=digest.rows,
        csv_sha256=digest.csv.hexdigest(),
        csv_bytes=digest.csv_bytes,
        object_sha256=digest.obj.hexdigest(),
        object_bytes=digest.obj_bytes,
        compression=EXPORT_CODEC,
        storage_class=action.storage_class,
        exported_at=rfc3339(clock()),
    )


def _upload(
    db: PartitionDatabase,
    store: ExportStore,
    action: ExportPartition,
    clock: Callable[[], datetime],
) -> ExportManifest:
    """Steps 1 and 2: the one read of the partition, into a new object and its manifest."""
    if store.head(action.manifest_key) is not None:
        raise ExportConflictError(
            f"{_where(action, action.manifest_key)} exists without its data object "
            f"{action.key}: not written by this export; nothing written, partition kept"
        )
    digest = _Digest.new()
    upload_class = "STANDARD" if action.storage_class in ARCHIVE_CLASSES else action.storage_class
    metadata = {
        "format": FORMAT,
        "compression": EXPORT_CODEC,
        "source-system-identifier": action.source,
        "source-database": action.database,
        "source-partition": str(action.partition),
        "manifest": action.manifest_key.rsplit("/", 1)[-1],
    }
    try:
        store.upload(
            action.key,
            _compressed(db, action, digest),
            metadata=metadata,
            storage_class=upload_class,
        )
    except Conflict:
        raise ExportConflictError(
            f"{_where(action)} was created by another writer during this export; partition kept"
        ) from None
    digest.rows = db.last_copy_rows
    manifest = _manifest(action, digest, clock)
    try:
        store.put_json(action.manifest_key, manifest.document())
    except Conflict:
        raise ExportConflictError(
            f"{_where(action, action.manifest_key)} was created by another writer during this "
            "export; partition kept"
        ) from None
    return manifest


def _adopt(
    db: PartitionDatabase,
    store: ExportStore,
    action: ExportPartition,
    head: ObjectHead,
    clock: Callable[[], datetime],
) -> tuple[ExportManifest, bool]:
    """The key is taken: the earlier export of this partition, or a conflict.

    Returns the manifest to verify against, and whether it still has to be written (an earlier
    run stopped between the upload and the manifest).
    """
    where = _where(action)
    try:
        document: dict[str, object] | None = store.get_json(action.manifest_key)
    except NotFound:
        document = None
    if document is None:
        meta = head.metadata
        named = (
            meta.get("source-system-identifier"),
            meta.get("source-database"),
            meta.get("source-partition"),
        )
        if named != (action.source, action.database, str(action.partition)):
            raise ExportConflictError(
                f"{where} already holds an object that is not this partition's export (no "
                f"manifest; it names source {named[0] or '-'}/{named[1] or '-'}/"
                f"{named[2] or '-'}); nothing overwritten, partition kept"
            )
        # Our own upload from a run that stopped before its manifest: verify it against a
        # fresh read, then write the manifest.
        manifest = _manifest(action, _measure(db, action), clock)
        return replace(manifest, object_sha256="", object_bytes=head.size), True
    try:
        manifest = ExportManifest.parse(document)
    except ManifestProblem as error:
        raise ExportConflictError(
            f"{where}: {error}; nothing overwritten, partition kept"
        ) from None
    if not manifest.same_source(action.source, action.database, str(action.partition)):
        raise ExportConflictError(
            f"{where} is the export of {manifest.source}/{manifest.database}/"
            f"{manifest.partition}, not of this partition; nothing overwritten, partition kept"
        )
    fresh = _measure(db, action)
    if (manifest.rows, manifest.csv_sha256) != (fresh.rows, fresh.csv.hexdigest()):
        raise ExportConflictError(
            f"{where} holds {manifest.rows} rows with another digest than the partition's "
            f"{fresh.rows} rows; nothing overwritten, partition kept"
        )
    return manifest, False


def _read_back(store: ExportStore, action: ExportPartition, head: ObjectHead) -> _Digest:
    """Step 3's reading: every byte of the object, hashed, decompressed, hashed, counted."""
    digest = _Digest.new()
    records = CsvRecords()
    codec = decompressor(EXPORT_CODEC)
    try:
        for chunk in store.read(action.key, etag=head.etag or None):
            digest.obj.update(chunk)
            digest.obj_bytes += len(chunk)
            data = codec.decompress(chunk)
            digest.csv.update(data)
            digest.csv_bytes += len(data)
            records.feed(data)
        codec.finish()
    except CorruptStreamError as error:
        raise ExportNotVerifiedError(
            f"{_where(action)} does not decompress ({error}); nothing dropped, partition kept"
        ) from None
    digest.rows = records.rows()
    return digest


def _verify(
    store: ExportStore, action: ExportPartition, manifest: ExportManifest
) -> tuple[ExportManifest, ObjectHead]:
    """Steps 3-5. Returns the manifest (object digest filled in) and the final HEAD."""
    where = _where(action)
    head = store.head(action.key)
    if head is None:
        raise ExportNotVerifiedError(f"{where} is not there after the upload; nothing dropped")
    if head.storage_class in ARCHIVE_CLASSES:
        # Only the copy after a successful read-back puts an export there, and marks it.
        if head.metadata.get(VERIFIED_META) != manifest.csv_sha256:
            raise ExportNotVerifiedError(
                f"{where} is in {head.storage_class} without the mark of a verified export; it "
                "cannot be read back without a restore request; nothing dropped, partition kept"
            )
    else:
        got = _read_back(store, action, head)
        rows = got.rows
        problems = []
        if manifest.object_sha256 and got.obj.hexdigest() != manifest.object_sha256:
            problems.append("object SHA-256 differs from the manifest's")
        if got.obj_bytes != manifest.object_bytes:
            problems.append(f"{got.obj_bytes} bytes instead of {manifest.object_bytes}")
        if got.csv.hexdigest() != manifest.csv_sha256:
            problems.append("CSV SHA-256 differs from the partition's")
        if rows != manifest.rows:
            problems.append(f"{rows} rows read back instead of {manifest.rows}")
        if problems:
            raise ExportNotVerifiedError(
                f"{where}: {', '.join(problems)}; nothing dropped, partition kept"
            )
        manifest = replace(manifest, object_sha256=got.obj.hexdigest())
        if action.storage_class in ARCHIVE_CLASSES:
            store.change_class(
                action.key,
                head,
                action.storage_class,
                {**head.metadata, VERIFIED_META: manifest.csv_sha256},
            )
        head = store.head(action.key) or head
    problems = []
    if head.size != manifest.object_bytes:
        problems.append(f"size {head.size} instead of {manifest.object_bytes}")
    if head.storage_class != action.storage_class:
        problems.append(f"storage class {head.storage_class} instead of {action.storage_class}")
    if problems:
        raise ExportNotVerifiedError(f"{where}: {', '.join(problems)}; nothing dropped")
    return manifest, head


def _mark_kept(db: PartitionDatabase, action: ExportPartition, error: ClientError) -> None:
    """Record on the kept partition why it was kept; the reconciler reports it."""
    statement = sql.SQL("COMMENT ON TABLE {} IS {}").format(
        sql.Identifier(action.partition.schema, action.partition.name),
        sql.Literal(kept_mark(error.reason, error.message)),
    )
    db.write_now(statement)


def export_and_drop(
    db: PartitionDatabase,
    store: ExportStore,
    action: ExportPartition,
    *,
    before_drop: Callable[[ExportResult], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExportResult:
    """Export `action.partition`, verify the object, drop the partition: all or nothing.

    `before_drop` runs between the verification and the DROP (tests inject failures there).
    """
    if not action.source:
        raise ExportConflictError(f"{action.partition}: the export has no source identity")
    try:
        with db.locked_snapshot(action.partition):
            existing = store.head(action.key)
            if existing is None:
                manifest, pending_manifest = _upload(db, store, action, clock), False
            else:
                manifest, pending_manifest = _adopt(db, store, action, existing, clock)
            manifest, head = _verify(store, action, manifest)
            if pending_manifest:
                try:
                    store.put_json(action.manifest_key, manifest.document())
                except Conflict:
                    raise ExportConflictError(
                        f"{_where(action, action.manifest_key)} was created by another writer; "
                        "partition kept"
                    ) from None
            result = ExportResult(
                partition=str(action.partition),
                bucket=action.bucket,
                key=action.key,
                manifest_key=action.manifest_key,
                rows=manifest.rows,
                sha256=manifest.csv_sha256,
                stored_bytes=head.size,
                csv_bytes=manifest.csv_bytes,
                uploaded=existing is None,
            )
            if before_drop is not None:
                before_drop(result)
            db.execute_write(drop_sql(action.partition))
    except (ExportConflictError, ExportNotVerifiedError) as error:
        try:
            _mark_kept(db, action, error)
        except ClientError as marking:
            raise type(error)(
                f"{error.message} (could not record it: {marking.message})"
            ) from error
        raise
    return result
