"""The local stack's S3 server speaks the S3 API over HTTP to real boto3.

Backups and archives are written through boto3, so a byte-exact round trip is the least the
stack must prove.
"""

from __future__ import annotations

import hashlib
import os

from stackfixtures import StackEnv


def test_an_object_put_through_boto3_reads_back_byte_identical(
    stack: StackEnv, s3_bucket: str
) -> None:
    body = os.urandom(256 * 1024) + b"\x00\xff end"
    s3 = stack.s3_client()
    s3.put_object(Bucket=s3_bucket, Key="probe/object.bin", Body=body)

    got = s3.get_object(Bucket=s3_bucket, Key="probe/object.bin")["Body"].read()

    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()
    assert got == body


def test_a_fresh_bucket_starts_empty(stack: StackEnv, s3_bucket: str) -> None:
    listing = stack.s3_client().list_objects_v2(Bucket=s3_bucket)
    assert listing["KeyCount"] == 0
