"""The export bucket: streamed multipart uploads of partitions, and the HEAD that verifies them.

An export is one object per partition. Its metadata carries what a later reader (or the drop
that follows) needs to trust it: the row count, the sha256 of the uncompressed CSV, the codec,
and the source partition and bounds. S3 fixes metadata when the upload starts, so the caller
computes the checksum before uploading (see jobs/partition_export.py). The upload is aborted
unless it completes, so a failed export never leaves an object that looks like one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import botocore.exceptions

from lokifi_storage.clients.backup_store import MultipartUpload
from lokifi_storage.clients.s3 import S3Client, s3_error_code, s3_errors
from lokifi_storage.domain.upload_parts import part_size

__all__ = ["DEFAULT_PART_SIZE", "ExportStore", "ObjectHead"]

DEFAULT_PART_SIZE = 16 * 1024 * 1024
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class ObjectHead:
    """What HEAD says about an exported object."""

    size: int
    metadata: dict[str, str]
    storage_class: str


class ExportStore:
    """Exported partitions in one bucket, addressed by key."""

    def __init__(self, client: S3Client, bucket: str, *, part_size: int = DEFAULT_PART_SIZE):
        self.client = client
        self.bucket = bucket
        self.part_size = part_size

    def head(self, key: str) -> ObjectHead | None:
        """The object's size, metadata and storage class; None when there is no such object."""
        with s3_errors(f"HEAD s3://{self.bucket}/{key}"):
            try:
                reply = self.client.head_object(Bucket=self.bucket, Key=key)
            except botocore.exceptions.ClientError as error:
                if s3_error_code(error) in _MISSING:
                    return None
                raise
        return ObjectHead(
            size=int(reply["ContentLength"]),
            metadata={k.lower(): v for k, v in reply.get("Metadata", {}).items()},
            # S3 omits the header for STANDARD objects.
            storage_class=str(reply.get("StorageClass") or "STANDARD"),
        )

    def upload(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        metadata: Mapping[str, str],
        storage_class: str,
    ) -> int:
        """Stream `chunks` into a multipart upload; return the bytes stored. Aborted on error."""
        with s3_errors(f"start upload of s3://{self.bucket}/{key}"):
            reply = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                Metadata=dict(metadata),
                StorageClass=storage_class,  # type: ignore[arg-type]
                ContentType="application/zstd",
            )
        total = 0
        with MultipartUpload(self.client, self.bucket, key, reply["UploadId"]) as upload:
            number = 1
            buffer = bytearray()
            for chunk in chunks:
                buffer += chunk
                size = part_size(number, self.part_size)
                while len(buffer) >= size:
                    upload.upload_part(number, bytes(buffer[:size]))
                    total += size
                    del buffer[:size]
                    number += 1
                    size = part_size(number, self.part_size)
            if buffer or number == 1:
                upload.upload_part(number, bytes(buffer))
                total += len(buffer)
            upload.complete()
        return total
