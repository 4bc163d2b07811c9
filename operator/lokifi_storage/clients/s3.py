"""S3 (or any S3-compatible store) through boto3: a client factory, the error mapping, a request
counter, and the bucket/lifecycle calls the object-storage reconciler makes.

`make_client` and `botocore_errors` are general on purpose: backups and partition exports talk
to the same store with the same credentials and should map errors the same way.

Error messages name the operation and the bucket, plus S3's own message only where it explains
a refused document (InvalidLifecycle); never a key, and never the request that was signed.

`writes_under` makes every call of a client that changes something ask the leader's fence first,
from botocore's own `before-call` hook, so no write path of a part can forget to.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    "botocore_errors",
    "bucket_exists",
    "create_bucket",
    "delete_lifecycle",
    "get_bucket_tags",
    "get_lifecycle",
    "make_client",
    "put_bucket_tags",
    "put_lifecycle",
    "s3_error_code",
    "s3_errors",
    "writes_under",
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
    rarely have wildcard DNS for virtual-hosted bucket names. An endpoint carrying
    user:password@ is refused (without quoting it): botocore would put it in its log lines and
    error messages.
    """
    if endpoint and "@" in endpoint:
        raise ClientError(
            "the S3 endpoint carries user:password@; give the keys through "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (credentialsSecretRef) instead",
            reason=Reason.INVALID_SPEC,
        )
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


def make_reconcile_client(
    endpoint: str | None, region: str | None, access_key: str | None, secret_key: str | None
) -> S3Client:
    """A client for a reconcile's S3 calls, which are small (a lifecycle document, a bucket
    HEAD, a page of a listing): a server that accepts and never answers reads as
    EndpointUnreachable after at most 2 x (3 + 5) s, well inside one resync and the part's own
    timeout. Jobs that move data keep make_client's longer defaults."""
    return make_client(
        endpoint,
        region,
        access_key,
        secret_key,
        connect_timeout=3,
        read_timeout=5,
        max_attempts=2,
    )


# S3 operations that only read: every other one changes something and is fenced.
_READ_OPERATIONS = ("Get", "Head", "List")


@contextmanager
def writes_under(client: S3Client, check: Callable[[str], None] | None) -> Iterator[S3Client]:
    """`client` with `check` asked before each call that changes something; `check` raising
    refuses the call before anything is sent. None: nothing is asked."""
    if check is None:
        yield client
        return
    fence = check

    def before_call(model: Any, **_: Any) -> None:
        operation = str(model.name)
        if not operation.startswith(_READ_OPERATIONS):
            fence(f"S3 {operation}")

    client.meta.events.register("before-call.s3", before_call)
    try:
        yield client
    finally:
        client.meta.events.unregister("before-call.s3", before_call)


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


def json_object(body: bytes, where: str) -> dict[str, Any]:
    """A stored JSON document (a manifest, a verify marker) as a dict, or a ClientError naming
    the object: a damaged sidecar must stop the work that trusts it, not crash it."""
    try:
        document = json.loads(body)
    except ValueError as error:
        raise ClientError(f"{where} is not valid JSON") from error
    if not isinstance(document, dict):
        raise ClientError(f"{where} is not a JSON object")
    return document


def s3_error_code(error: botocore.exceptions.ClientError) -> str:
    """S3's code for a refused request ("AccessDenied", "NoSuchKey", or the bare HTTP status
    such as "404" for a HEAD, whose reply has no body); "" when S3 sent none."""
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def botocore_errors(
    what: str,
    refused: Callable[[str, str, Mapping[str, Any]], ClientError | None],
    *,
    no_credentials: str = "no S3 credentials",
) -> Iterator[None]:
    """Translate botocore's exceptions into the clients' tree; `what` says what was being done.

    The one translation for every S3 caller, so an unreachable endpoint or missing credentials
    read the same from the bucket reconciler, backups and exports. What a refused request means
    depends on the caller (a missing key is NotFound for a backup read, a missing bucket is a
    bucket problem for the reconciler), so `refused(what, code, document)` maps S3's code and
    its error document to the error to raise; None leaves the generic "S3 error <code>".
    """
    try:
        yield
    except botocore.exceptions.ClientError as error:
        code = s3_error_code(error)
        mapped = refused(what, code, error.response.get("Error", {}))
        if mapped is not None:
            raise mapped from error
        raise ClientError(f"{what}: S3 error {code or 'unknown'}") from error
    except _UNREACHABLE as error:
        raise ConnectionFailed(
            f"{what}: S3 endpoint not answering", reason=Reason.ENDPOINT_UNREACHABLE
        ) from error
    except botocore.exceptions.NoCredentialsError as error:
        raise AuthenticationFailed(
            f"{what}: {no_credentials}", reason=Reason.ACCESS_DENIED
        ) from error


def _bucket_level(what: str, code: str, document: Mapping[str, Any]) -> ClientError | None:
    """Codes as the bucket and lifecycle calls see them: a 404 is the bucket missing."""
    if code in _DENIED:
        return AuthenticationFailed(f"{what}: access denied ({code})", reason=Reason.ACCESS_DENIED)
    if code in _NO_BUCKET:
        return NotFound(f"{what}: bucket not found", reason=Reason.BUCKET_NOT_FOUND)
    if code in _BAD_DOCUMENT:
        detail = str(document.get("Message", ""))[:300]
        return Refused(f"{what}: refused by S3 ({code}): {detail}", reason=Reason.INVALID_LIFECYCLE)
    return None


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """botocore_errors for bucket-level calls (a 404 means the bucket is missing)."""
    with botocore_errors(what, _bucket_level):
        yield


def bucket_exists(client: S3Client, bucket: str) -> bool:
    """HeadBucket: True, False when it does not exist; access errors raise."""
    try:
        with s3_errors(f"HeadBucket {bucket}"):
            client.head_bucket(Bucket=bucket)
    except NotFound:
        return False
    return True


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
            if s3_error_code(error) != "BucketAlreadyOwnedByYou":
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
            if s3_error_code(error) == "NoSuchLifecycleConfiguration":
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


def get_bucket_tags(client: S3Client, bucket: str) -> dict[str, str]:
    """The bucket's tags (where the operator records who manages which lifecycle rule)."""
    with s3_errors(f"GetBucketTagging {bucket}"):
        try:
            reply = client.get_bucket_tagging(Bucket=bucket)
        except botocore.exceptions.ClientError as error:
            if s3_error_code(error) == "NoSuchTagSet":
                return {}
            raise
    return {str(t["Key"]): str(t["Value"]) for t in reply.get("TagSet", [])}


def put_bucket_tags(client: S3Client, bucket: str, tags: Mapping[str, str]) -> None:
    """Replace the bucket's tags with `tags` (callers merge: S3 has no per-tag write)."""
    if not tags:
        with s3_errors(f"DeleteBucketTagging {bucket}"):
            client.delete_bucket_tagging(Bucket=bucket)
        return
    with s3_errors(f"PutBucketTagging {bucket}"):
        client.put_bucket_tagging(
            Bucket=bucket,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]},
        )
