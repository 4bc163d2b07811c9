"""The backup bucket: listing runs, multipart uploads that either complete or vanish, reads.

A backup upload is a multipart upload: parts are invisible until CompleteMultipartUpload, and
AbortMultipartUpload discards them, so a failed or interrupted run never leaves an object that
looks like a backup. `MultipartUpload` is a context manager that aborts unless `complete()` was
reached.

Errors are the clients' error tree; messages name the bucket and key, never credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import (
    AuthenticationFailed,
    ClientError,
    Conflict,
    NotFound,
)
from lokifi_storage.clients.s3 import botocore_errors, json_object
from lokifi_storage.domain.backup_catalog import ListedObject
from lokifi_storage.domain.backup_retention import PendingUpload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

# The client itself comes from clients/s3.py's make_client, and errors go through its
# botocore_errors. Refused requests are classified here rather than as its s3_errors does,
# because backups need key-level answers: a missing manifest (NoSuchKey) or an upload already
# gone (NoSuchUpload) are NotFound, not bucket or lifecycle problems.

__all__ = ["ARCHIVE_CLASSES", "BackupStore", "MultipartUpload", "ObjectReader", "s3_errors"]

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
_MISSING = {"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "404", "NotFound"}
_TAKEN = {"PreconditionFailed", "412"}


def _key_level(what: str, code: str, document: Mapping[str, Any]) -> ClientError | None:
    """Codes as backup reads and uploads see them: anything missing is NotFound."""
    if code in _DENIED:
        return AuthenticationFailed(f"{what}: access denied ({code})", reason=Reason.ACCESS_DENIED)
    if code in _MISSING:
        reason = Reason.BUCKET_NOT_FOUND if code == "NoSuchBucket" else None
        return NotFound(f"{what}: not found ({code})", reason=reason)
    if code in _TAKEN:
        return Conflict(f"{what}: refused, an object is already there ({code})")
    return None


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """botocore_errors for backup objects, with the credentials hint a CronJob's log needs."""
    with botocore_errors(
        what,
        _key_level,
        no_credentials="no S3 credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    ):
        yield


class MultipartUpload:
    """One object being uploaded in parts; aborted on exit unless completed."""

    def __init__(self, client: S3Client, bucket: str, key: str, upload_id: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self._parts: dict[int, str] = {}
        self.completed = False
        self.aborted = False

    def upload_part(self, number: int, data: bytes) -> None:
        with s3_errors(f"upload part {number} of s3://{self.bucket}/{self.key}"):
            reply = self._client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
            )
        self._parts[number] = reply["ETag"]

    def record_part(self, number: int, etag: str) -> None:
        """A part made another way (UploadPartCopy)."""
        self._parts[number] = etag

    @property
    def parts(self) -> int:
        return len(self._parts)

    def complete(self, *, if_absent: bool = False) -> None:
        """Make the object visible: the one moment a backup comes into existence.

        `if_absent` sends `If-None-Match: *`: a server that honours it refuses (Conflict) when
        an object already exists at the key, instead of replacing it.
        """
        parts = [{"PartNumber": n, "ETag": self._parts[n]} for n in sorted(self._parts)]
        condition = {"IfNoneMatch": "*"} if if_absent else {}
        with s3_errors(f"complete upload of s3://{self.bucket}/{self.key}"):
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                **condition,  # type: ignore[arg-type]
            )
        self.completed = True

    def abort(self) -> None:
        """Discard every uploaded part. Idempotent; an already-gone upload is fine."""
        if self.completed or self.aborted:
            return
        try:
            with s3_errors(f"abort upload of s3://{self.bucket}/{self.key}"):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )
        except NotFound:
            pass
        self.aborted = True

    def __enter__(self) -> MultipartUpload:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.completed:
            self.abort()


@dataclass
class ObjectReader:
    """A GET in progress: `chunks()` yields the body; size and class from the response."""

    key: str
    size: int
    storage_class: str
    _body: Any

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        with s3_errors(f"read s3://.../{self.key}"):
            yield from self._body.iter_chunks(size)

    def close(self) -> None:
        self._body.close()


# Storage classes whose objects cannot be read without a restore request first.
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


class BackupStore:
    """The backup bucket, addressed by key."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def list_objects(self, prefix: str) -> list[ListedObject]:
        objects: list[ListedObject] = []
        with s3_errors(f"list s3://{self.bucket}/{prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    objects.append(
                        ListedObject(item["Key"], int(item["Size"]), item["LastModified"])
                    )
        return objects

    def pending_uploads(self, prefix: str) -> list[PendingUpload]:
        uploads: list[PendingUpload] = []
        with s3_errors(f"list uploads in s3://{self.bucket}/{prefix}"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Uploads", []):
                    uploads.append(PendingUpload(item["Key"], item["UploadId"], item["Initiated"]))
        return uploads

    def abort_upload(self, upload: PendingUpload) -> None:
        MultipartUpload(self.client, self.bucket, upload.key, upload.upload_id).abort()

    def start_upload(
        self, key: str, *, storage_class: str, metadata: Mapping[str, str], content_type: str
    ) -> MultipartUpload:
        with s3_errors(f"start upload of s3://{self.bucket}/{key}"):
            reply = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                StorageClass=storage_class,  # type: ignore[arg-type]
                Metadata=dict(metadata),
                ContentType=content_type,
            )
        return MultipartUpload(self.client, self.bucket, key, reply["UploadId"])

    def put_json(self, key: str, document: Mapping[str, Any]) -> None:
        body = json.dumps(document, indent=1, sort_keys=True).encode()
        with s3_errors(f"write s3://{self.bucket}/{key}"):
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"
            )

    def get_json(self, key: str) -> dict[str, Any]:
        with s3_errors(f"read s3://{self.bucket}/{key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return json_object(body, f"s3://{self.bucket}/{key}")

    def open(self, key: str) -> ObjectReader:
        with s3_errors(f"read s3://{self.bucket}/{key}"):
            head = self.client.head_object(Bucket=self.bucket, Key=key)
            storage_class = str(head.get("StorageClass") or "STANDARD")
            if storage_class in ARCHIVE_CLASSES and 'ongoing-request="false"' not in str(
                head.get("Restore", "")
            ):
                raise ClientError(
                    f"s3://{self.bucket}/{key} is in {storage_class}: request a restore "
                    "of the object first (aws s3api restore-object), then retry"
                )
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
        return ObjectReader(key, int(reply["ContentLength"]), storage_class, reply["Body"])

    def delete(self, keys: Sequence[str]) -> None:
        """Delete `keys` (in batches of 1000); any per-key failure is an error."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            with s3_errors(f"delete from s3://{self.bucket}"):
                reply = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": batch, "Quiet": True},  # type: ignore[typeddict-item]
                )
            errors = reply.get("Errors", [])
            if errors:
                first = errors[0]
                raise ClientError(
                    f"delete from s3://{self.bucket}: {len(errors)} key(s) failed, first "
                    f"{first.get('Key')}: {first.get('Code')}"
                )
