"""The export bucket: create-only writes, the read-back that verifies an export, and the one
in-place rewrite an export makes (its own verified object moving to an archive class).

Every write here is create-only: `If-None-Match: *` on the upload's completion and on the
manifest's PUT, so a server that honours it refuses to replace an object that is already there
(S3 since 2024; the stack's moto server too). For a server that ignores the header, callers
HEAD the key first and refuse when it is taken, which leaves only the race between two writers
of the same key, and the key carries the source's identity.

GLACIER and DEEP_ARCHIVE objects cannot be read back without a restore request, so an export
to those classes is uploaded in STANDARD, read back and verified, and only then copied onto
itself in the target class (`CopySourceIfMatch` its ETag: exactly the bytes that were checked).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from lokifi_storage.clients.backup_store import ARCHIVE_CLASSES, BackupStore, MultipartUpload
from lokifi_storage.clients.backup_store import s3_errors as key_errors
from lokifi_storage.clients.s3 import S3Client, json_object, s3_error_code, s3_errors
from lokifi_storage.domain.upload_parts import part_size

__all__ = ["ARCHIVE_CLASSES", "DEFAULT_PART_SIZE", "ExportStore", "ObjectHead"]

DEFAULT_PART_SIZE = 16 * 1024 * 1024
COPY_PART = 1024 * 1024 * 1024  # parts of a multipart copy (S3: at most 5 GiB per part)
SINGLE_COPY_LIMIT = 5 * 1024 * 1024 * 1024  # CopyObject's own limit
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class ObjectHead:
    """What HEAD says about an exported object."""

    size: int
    metadata: dict[str, str]
    storage_class: str
    etag: str = ""


class ExportStore:
    """Exported partitions in one bucket, addressed by key."""

    def __init__(self, client: S3Client, bucket: str, *, part_size: int = DEFAULT_PART_SIZE):
        self.client = client
        self.bucket = bucket
        self.part_size = part_size

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def head(self, key: str) -> ObjectHead | None:
        """The object's size, metadata and storage class; None when there is no such object."""
        with s3_errors(f"HEAD {self._where(key)}"):
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
            etag=str(reply.get("ETag", "")),
        )

    def abort_abandoned(self, key: str) -> int:
        """Abort every unfinished multipart upload of `key`; the number aborted.

        A run killed in the middle of an upload (SIGKILL, node loss) leaves its parts stored,
        and billed, until someone aborts the upload; the next export of the same partition is
        the one that knows the key. Only for a caller that holds the partition-work lock of the
        key's table: then no other export of that table is running, so every upload found is
        abandoned, none is another run's in progress."""
        store = BackupStore(self.client, self.bucket)
        abandoned = [u for u in store.pending_uploads(key) if u.key == key]
        for upload in abandoned:
            store.abort_upload(upload)
        return len(abandoned)

    def upload(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        metadata: Mapping[str, str],
        storage_class: str,
    ) -> int:
        """Stream `chunks` into a new object; return the bytes stored.

        Aborted on error; refused (Conflict) when the key is taken by the time it completes.
        """
        with key_errors(f"start upload of {self._where(key)}"):
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
            upload.complete(if_absent=True)
        return total

    def put_json(self, key: str, document: Mapping[str, Any]) -> None:
        """A new JSON object; refused (Conflict) when the key is taken."""
        body = json.dumps(document, indent=1, sort_keys=True).encode()
        with key_errors(f"write {self._where(key)}"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
            )

    def get_json(self, key: str) -> dict[str, Any]:
        with key_errors(f"read {self._where(key)}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return json_object(body, self._where(key))

    def read(self, key: str, *, etag: str | None = None, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The object's bytes as S3 serves them (`IfMatch` the ETag when given)."""
        condition = {"IfMatch": etag} if etag else {}
        with key_errors(f"read {self._where(key)}"):
            reply = self.client.get_object(Bucket=self.bucket, Key=key, **condition)  # type: ignore[arg-type]
            body = reply["Body"]
            try:
                yield from body.iter_chunks(chunk)
            finally:
                body.close()

    def change_class(
        self, key: str, head: ObjectHead, storage_class: str, metadata: Mapping[str, str]
    ) -> None:
        """Copy the object onto itself in `storage_class` with `metadata`, only if it is still
        the object `head` describes (its ETag)."""
        source = {"Bucket": self.bucket, "Key": key}
        what = f"move {self._where(key)} to {storage_class}"
        if head.size <= SINGLE_COPY_LIMIT:
            with key_errors(what):
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource=source,  # type: ignore[arg-type]
                    CopySourceIfMatch=head.etag,
                    StorageClass=storage_class,  # type: ignore[arg-type]
                    MetadataDirective="REPLACE",
                    Metadata=dict(metadata),
                    ContentType="application/zstd",
                )
            return
        with key_errors(what):
            reply = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                Metadata=dict(metadata),
                StorageClass=storage_class,  # type: ignore[arg-type]
                ContentType="application/zstd",
            )
        with MultipartUpload(self.client, self.bucket, key, reply["UploadId"]) as upload:
            for number, start in enumerate(range(0, head.size, COPY_PART), start=1):
                end = min(start + COPY_PART, head.size) - 1
                with key_errors(f"{what} (part {number})"):
                    part = self.client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload.upload_id,
                        PartNumber=number,
                        CopySource=source,  # type: ignore[arg-type]
                        CopySourceIfMatch=head.etag,
                        CopySourceRange=f"bytes={start}-{end}",
                    )
                upload.record_part(number, part["CopyPartResult"]["ETag"])
            upload.complete()
