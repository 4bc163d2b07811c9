"""S3 (or any S3-compatible store) through boto3: a client factory, the error mapping, a request
counter, and the bucket/lifecycle calls the object-storage reconciler makes.

`make_client` and `s3_errors` are general on purpose: backups and partition exports talk to the
same store with the same credentials and should map errors the same way.

Error messages name the operation and the bucket, plus S3's own message only where it explains
a refused document (InvalidLifecycle); never a key, and never the request that was signed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore.config import Config

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import (
    AuthenticationFailed,
    ClientError,
    ConnectionFailed,
    NotFound,
    Refused,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = [
    "LifecycleDocument",
    "RequestCounter",
    "S3Client",
    "bucket_exists",
    "create_bucket",
    "delete_lifecycle",
    "get_lifecycle",
    "make_client",
    "put_lifecycle",
    "s3_errors",
]

_DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "403"}
)
_NO_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})
_BAD_DOCUMENT = frozenset(
    {"MalformedXML", "InvalidRequest", "InvalidArgument", "InvalidStorageClass"}
)
_UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)


def make_client(
    endpoint: str | None,
    region: str | None,
    access_key: str | None,
    secret_key: str | None,
    *,
    connect_timeout: float = 5,
    read_timeout: float = 60,
    max_attempts: int = 3,
) -> S3Client:
    """A boto3 S3 client. Keys None means boto3's own chain (env, IRSA, instance profile).

    Path-style addressing when an endpoint is given: S3-compatible stores (MinIO, Ceph, moto)
    rarely have wildcard DNS for virtual-hosted bucket names.
    """
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else None,
    )
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region or None,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        config=config,
    )
    return client


class RequestCounter:
    """Counts what a client sends, from botocore's own event hooks.

    `operations` counts API calls by name (PutBucketLifecycleConfiguration, ...), once per call
    however many retries it took; `http_methods` counts every HTTP request actually sent.
    """

    def __init__(self) -> None:
        self.operations: Counter[str] = Counter()
        self.http_methods: Counter[str] = Counter()

    def attach(self, client: S3Client) -> RequestCounter:
        client.meta.events.register("before-call.s3", self._on_call)
        client.meta.events.register("before-send.s3", self._on_send)
        return self

    def _on_call(self, model: Any, **_: Any) -> None:
        self.operations[str(model.name)] += 1

    def _on_send(self, request: Any, **_: Any) -> None:
        self.http_methods[str(request.method).upper()] += 1

    @property
    def writes(self) -> int:
        """HTTP requests that can change something (PUT, POST, DELETE)."""
        return sum(self.http_methods[m] for m in ("PUT", "POST", "DELETE"))

    def reset(self) -> None:
        self.operations.clear()
        self.http_methods.clear()


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Translate botocore's errors into the clients' tree; `what` says what was being done."""
    try:
        yield
    except botocore.exceptions.ClientError as error:
        err = error.response.get("Error", {})
        code = _code(error)
        if code in _DENIED:
            raise AuthenticationFailed(
                f"{what}: access denied ({code})", reason=Reason.ACCESS_DENIED
            ) from error
        if code in _NO_BUCKET:
            raise NotFound(f"{what}: bucket not found", reason=Reason.BUCKET_NOT_FOUND) from error
        if code in _BAD_DOCUMENT:
            detail = str(err.get("Message", ""))[:300]
            raise Refused(
                f"{what}: refused by S3 ({code}): {detail}", reason=Reason.INVALID_LIFECYCLE
            ) from error
        raise ClientError(f"{what}: S3 error {code or 'unknown'}") from error
    except _UNREACHABLE as error:
        raise ConnectionFailed(
            f"{what}: S3 endpoint not answering", reason=Reason.ENDPOINT_UNREACHABLE
        ) from error
    except botocore.exceptions.NoCredentialsError as error:
        raise AuthenticationFailed(
            f"{what}: no S3 credentials", reason=Reason.ACCESS_DENIED
        ) from error


def bucket_exists(client: S3Client, bucket: str) -> bool:
    """HeadBucket: True, False when it does not exist; access errors raise."""
    try:
        with s3_errors(f"HeadBucket {bucket}"):
            client.head_bucket(Bucket=bucket)
    except NotFound:
        return False
    return True


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def create_bucket(client: S3Client, bucket: str, region: str) -> None:
    """CreateBucket in `region` (us-east-1 takes no location constraint); one we own is fine."""
    with s3_errors(f"CreateBucket {bucket}"):
        try:
            if region == "us-east-1":
                client.create_bucket(Bucket=bucket)
            else:
                client.create_bucket(
                    Bucket=bucket,
                    CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                )
        except botocore.exceptions.ClientError as error:
            if _code(error) != "BucketAlreadyOwnedByYou":
                raise


class LifecycleDocument:
    """A bucket's lifecycle configuration as S3 returns it: rules plus document-level options."""

    def __init__(self, rules: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> None:
        self.rules = [dict(rule) for rule in rules]
        self.options = dict(options)


def get_lifecycle(client: S3Client, bucket: str) -> LifecycleDocument:
    """The current configuration; an absent one is an empty document, not an error."""
    with s3_errors(f"GetBucketLifecycleConfiguration {bucket}"):
        try:
            reply = client.get_bucket_lifecycle_configuration(Bucket=bucket)
        except botocore.exceptions.ClientError as error:
            if _code(error) == "NoSuchLifecycleConfiguration":
                return LifecycleDocument([], {})
            raise
    options = {
        key: value
        for key, value in reply.items()
        if key not in ("Rules", "ResponseMetadata") and value is not None
    }
    return LifecycleDocument(reply.get("Rules", []), options)


def put_lifecycle(client: S3Client, bucket: str, document: LifecycleDocument) -> None:
    """PutBucketLifecycleConfiguration with the whole document (S3 has no per-rule write)."""
    with s3_errors(f"PutBucketLifecycleConfiguration {bucket}"):
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": document.rules},  # type: ignore[typeddict-item]
            **document.options,
        )


def delete_lifecycle(client: S3Client, bucket: str) -> None:
    """DeleteBucketLifecycle: S3 refuses a PUT with no rules, so an empty document is this."""
    with s3_errors(f"DeleteBucketLifecycle {bucket}"):
        client.delete_bucket_lifecycle(Bucket=bucket)
