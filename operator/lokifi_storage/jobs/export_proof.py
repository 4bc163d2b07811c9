"""Steps 3-5 of a partition export: prove from the bytes in S3 that the object holds the
partition, before anything is dropped.

The proof is kept apart from the writing (jobs/partition_export.py) because it must not trust
anything the writer computed except the manifest: it reads every byte back, hashes and counts
them afresh, and only an archive-class object carrying the mark of an earlier proof is taken
without a read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.s3_export import ARCHIVE_CLASSES, ExportStore, ObjectHead
from lokifi_storage.domain.partitions.actions import ExportPartition
from lokifi_storage.domain.partitions.export_layout import ExportManifest
from lokifi_storage.jobs.compression import CorruptStreamError, decompressor

__all__ = [
    "EXPORT_CODEC",
    "VERIFIED_META",
    "CsvRecords",
    "ExportDigest",
    "ExportNotVerifiedError",
    "export_url",
    "read_back",
    "verify_export",
]

EXPORT_CODEC = "zstd"
VERIFIED_META = "verified-csv-sha256"  # set by the copy into an archive class, after step 3


class ExportNotVerifiedError(ClientError):
    """The bytes in S3 could not be proven to hold the partition; nothing was dropped."""

    reason = Reason.EXPORT_NOT_VERIFIED


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
class ExportDigest:
    csv: Any  # hashlib's sha256 objects
    obj: Any
    csv_bytes: int = 0
    obj_bytes: int = 0
    rows: int = 0

    @classmethod
    def new(cls) -> ExportDigest:
        return cls(hashlib.sha256(), hashlib.sha256())

    def add_csv(self, data: bytes) -> None:
        """Count `data` as CSV: what the partition holds."""
        self.csv.update(data)
        self.csv_bytes += len(data)

    def add_obj(self, data: bytes) -> None:
        """Count `data` as the stored object: what S3 holds."""
        self.obj.update(data)
        self.obj_bytes += len(data)


def export_url(action: ExportPartition, key: str | None = None) -> str:
    return f"s3://{action.bucket}/{key or action.key}"


def read_back(store: ExportStore, action: ExportPartition, head: ObjectHead) -> ExportDigest:
    """Step 3's reading: every byte of the object, hashed, decompressed, hashed, counted."""
    digest = ExportDigest.new()
    records = CsvRecords()
    codec = decompressor(EXPORT_CODEC)
    try:
        for chunk in store.read(action.key, etag=head.etag or None):
            digest.add_obj(chunk)
            data = codec.decompress(chunk)
            digest.add_csv(data)
            records.feed(data)
        codec.finish()
    except CorruptStreamError as error:
        raise ExportNotVerifiedError(
            f"{export_url(action)} does not decompress ({error}); nothing dropped, partition kept"
        ) from None
    digest.rows = records.rows()
    return digest


def verify_export(
    store: ExportStore, action: ExportPartition, manifest: ExportManifest
) -> tuple[ExportManifest, ObjectHead]:
    """Steps 3-5. Returns the manifest (object digest filled in) and the final HEAD."""
    where = export_url(action)
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
        got = read_back(store, action, head)
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
