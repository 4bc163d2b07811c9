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

Steps 3-5, the proof, are jobs/export_proof.py.

A failure anywhere rolls back: the partition stays. When the key is already taken, the object
is trusted only if it is this partition's: a manifest naming this source (system_identifier,
database, partition) whose row count and CSV digest equal a fresh read of the partition, and
bytes that pass the read-back (step 3). Anything else is a conflict: nothing is written, the
partition is kept, and its COMMENT records why (domain/partitions/export_layout.py), which
PartitionsReady reports with the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

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
from lokifi_storage.jobs.compression import compressor
from lokifi_storage.jobs.export_proof import (
    EXPORT_CODEC,
    ExportDigest,
    ExportNotVerifiedError,
    export_url,
    verify_export,
)

__all__ = ["ExportConflictError", "ExportResult", "export_and_drop"]

FORMAT = "csv-header"


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


def _compressed(
    db: PartitionDatabase, action: ExportPartition, digest: ExportDigest
) -> Iterator[bytes]:
    codec = compressor(EXPORT_CODEC)
    for chunk in db.copy_out(export_copy_query(action)):
        digest.add_csv(chunk)
        out = codec.compress(chunk)
        if out:
            digest.add_obj(out)
            yield out
    tail = codec.flush()
    if tail:
        digest.add_obj(tail)
        yield tail


def _measure(db: PartitionDatabase, action: ExportPartition) -> ExportDigest:
    """One read of the partition, hashed and counted, to compare with an earlier export."""
    digest = ExportDigest.new()
    for chunk in db.copy_out(export_copy_query(action)):
        digest.add_csv(chunk)
    digest.rows = db.last_copy_rows
    return digest


def _manifest(
    action: ExportPartition, digest: ExportDigest, clock: Callable[[], datetime]
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
            f"{export_url(action, action.manifest_key)} exists without its data object "
            f"{action.key}: not written by this export; nothing written, partition kept"
        )
    digest = ExportDigest.new()
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
            f"{export_url(action)} was created by another writer during this export; partition kept"
        ) from None
    digest.rows = db.last_copy_rows
    manifest = _manifest(action, digest, clock)
    _write_manifest(store, action, manifest, " during this export")
    return manifest


def _write_manifest(
    store: ExportStore, action: ExportPartition, manifest: ExportManifest, when: str = ""
) -> None:
    """The manifest beside the object, create-only: a manifest someone else wrote first is a
    conflict, never overwritten."""
    try:
        store.put_json(action.manifest_key, manifest.document())
    except Conflict:
        raise ExportConflictError(
            f"{export_url(action, action.manifest_key)} was created by another writer{when}; "
            "partition kept"
        ) from None


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
    where = export_url(action)
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
    The caller holds the partition-work lock of the table (jobs/partitions_cli.py takes it per
    table), which is what makes the uploads of `action.key` left unfinished by a killed run
    safe to abort first.
    """
    if not action.source:
        raise ExportConflictError(f"{action.partition}: the export has no source identity")
    try:
        with db.locked_snapshot(action.partition):
            store.abort_abandoned(action.key)
            existing = store.head(action.key)
            if existing is None:
                manifest, pending_manifest = _upload(db, store, action, clock), False
            else:
                manifest, pending_manifest = _adopt(db, store, action, existing, clock)
            manifest, head = verify_export(store, action, manifest)
            if pending_manifest:
                _write_manifest(store, action, manifest)
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
