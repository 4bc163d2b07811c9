"""S3 lifecycle rules against the local stack's S3 server, spoken to through real boto3.

The server runs with authentication on (stack/s3.py), so wrong keys are refused as on AWS.
Requests are counted with botocore's event hooks (clients/s3.py RequestCounter).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LifecycleRuleSpec, ObjectStorageSpec, TransitionSpec
from lokifi_storage.clients.s3 import RequestCounter, S3Client, make_client
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.reconcile.object_storage import reconcile_object_storage
from stackfixtures import StackEnv

SEED_RULE = {
    "id": "ArchiveOldFiles",
    "prefix": "",
    "transitions": [
        {"afterDays": 365, "storageClass": "GLACIER"},
        {"afterDays": 2555, "storageClass": "DEEP_ARCHIVE"},
    ],
    "abortIncompleteUploadsAfterDays": 7,
}
SEED_DOCUMENT = {
    "ID": "ArchiveOldFiles",
    "Filter": {"Prefix": ""},
    "Status": "Enabled",
    "Transitions": [
        {"Days": 365, "StorageClass": "GLACIER"},
        {"Days": 2555, "StorageClass": "DEEP_ARCHIVE"},
    ],
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
}
FOREIGN_RULE = {
    "ID": "team-logs-expiry",
    "Filter": {"Prefix": "logs/"},
    "Status": "Enabled",
    "Expiration": {"Days": 14},
}


def _spec(
    stack: StackEnv, buckets: list[dict[str, Any]], endpoint: str | None = None
) -> ObjectStorageSpec:
    return ObjectStorageSpec.model_validate(
        {
            "endpoint": endpoint or stack.s3_endpoint,
            "allowPlainHttp": True,
            "region": stack.aws_region,
            "credentialsSecretRef": {"name": "lokifi-s3"},
            "buckets": buckets,
        }
    )


def _client(stack: StackEnv) -> tuple[S3Client, RequestCounter]:
    client = make_client(
        stack.s3_endpoint, stack.aws_region, stack.aws_access_key_id, stack.aws_secret_access_key
    )
    return client, RequestCounter().attach(client)


def _rules(stack: StackEnv, bucket: str) -> list[dict[str, Any]]:
    reply = stack.s3_client().get_bucket_lifecycle_configuration(Bucket=bucket)
    return list(reply["Rules"])


def _reconcile(stack: StackEnv, spec: ObjectStorageSpec, client: S3Client, **kw: Any) -> Any:
    return reconcile_object_storage(
        spec, stack.aws_access_key_id, stack.aws_secret_access_key, client=client, **kw
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_seed_policy_lands_and_reads_back_equal(stack: StackEnv, s3_bucket: str) -> None:
    client, _ = _client(stack)
    report = _reconcile(
        stack, _spec(stack, [{"name": s3_bucket, "lifecycle": [SEED_RULE]}]), client
    )

    assert report.condition.status == "True", report.condition.message
    assert _rules(stack, s3_bucket) == [SEED_DOCUMENT]
    assert report.actions == [f"bucket {s3_bucket}: lifecycle rules added ArchiveOldFiles"]
    [bucket] = status_json(report.status)["objectStorage"]["buckets"]
    assert bucket == {
        "name": s3_bucket,
        "exists": True,
        "managedRules": ["ArchiveOldFiles"],
        "foreignRules": 0,
    }
    key = "S3_BUCKET_" + s3_bucket.upper().replace("-", "_")
    assert report.secret_data == {key: s3_bucket}


def test_a_second_pass_sends_no_write_at_all(stack: StackEnv, s3_bucket: str) -> None:
    client, counter = _client(stack)
    spec = _spec(stack, [{"name": s3_bucket, "lifecycle": [SEED_RULE]}])
    _reconcile(stack, spec, client)
    assert counter.operations["PutBucketLifecycleConfiguration"] == 1
    counter.reset()

    second = _reconcile(stack, spec, client)

    assert counter.writes == 0
    assert counter.http_methods["PUT"] == 0
    assert set(counter.operations) == {"HeadBucket", "GetBucketLifecycleConfiguration"}
    assert second.actions == []
    assert second.condition.status == "True"


def test_a_hand_made_change_to_a_managed_rule_is_repaired(stack: StackEnv, s3_bucket: str) -> None:
    client, counter = _client(stack)
    spec = _spec(stack, [{"name": s3_bucket, "lifecycle": [SEED_RULE]}])
    _reconcile(stack, spec, client)
    tampered = json.loads(json.dumps(SEED_DOCUMENT))
    tampered["Transitions"][0]["Days"] = 400
    tampered["Status"] = "Disabled"
    stack.s3_client().put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [tampered]}
    )
    counter.reset()

    report = _reconcile(stack, spec, client)

    assert counter.operations["PutBucketLifecycleConfiguration"] == 1
    assert _rules(stack, s3_bucket) == [SEED_DOCUMENT]
    assert report.actions == [f"bucket {s3_bucket}: lifecycle rules replaced ArchiveOldFiles"]


def test_rules_the_operator_does_not_manage_are_kept_untouched(
    stack: StackEnv, s3_bucket: str
) -> None:
    legacy = {"Prefix": "tmp/", "Status": "Enabled", "Expiration": {"Days": 1}}
    stack.s3_client().put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [FOREIGN_RULE, legacy]}
    )
    before = _rules(stack, s3_bucket)
    client, counter = _client(stack)
    spec = _spec(stack, [{"name": s3_bucket, "lifecycle": [SEED_RULE]}])

    report = _reconcile(stack, spec, client)

    after = _rules(stack, s3_bucket)
    assert after[:2] == before
    assert after[2] == SEED_DOCUMENT
    [bucket] = status_json(report.status)["objectStorage"]["buckets"]
    assert bucket["foreignRules"] == 2
    assert "kept 2 rule(s) it does not manage" in report.actions[0]
    assert "2 rule(s) not managed by the operator kept" in report.condition.message
    counter.reset()
    _reconcile(stack, spec, client)
    assert counter.writes == 0


def test_a_rule_dropped_from_the_spec_is_removed_and_foreign_rules_stay(
    stack: StackEnv, s3_bucket: str
) -> None:
    client, _ = _client(stack)
    two = [SEED_RULE, {"id": "ExpireScratch", "prefix": "scratch/", "expirationDays": 3}]
    first = _reconcile(stack, _spec(stack, [{"name": s3_bucket, "lifecycle": two}]), client)
    s3 = stack.s3_client()
    s3.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket,
        LifecycleConfiguration={"Rules": [*_rules(stack, s3_bucket), FOREIGN_RULE]},
    )
    managed = {s3_bucket: status_json(first.status)["objectStorage"]["buckets"][0]["managedRules"]}

    report = _reconcile(
        stack,
        _spec(stack, [{"name": s3_bucket, "lifecycle": [SEED_RULE]}]),
        client,
        previously_managed=managed,
    )

    assert [rule.get("ID") for rule in _rules(stack, s3_bucket)] == [
        "ArchiveOldFiles",
        "team-logs-expiry",
    ]
    assert "removed ExpireScratch" in report.actions[0]
    assert status_json(report.status)["objectStorage"]["buckets"][0]["managedRules"] == [
        "ArchiveOldFiles"
    ]


def test_a_missing_bucket_is_reported_and_not_created(stack: StackEnv) -> None:
    client, counter = _client(stack)
    name = "t-lokifi-missing-bucket-never-created"
    report = _reconcile(stack, _spec(stack, [{"name": name, "lifecycle": [SEED_RULE]}]), client)

    assert (report.condition.status, report.condition.reason) == ("False", Reason.BUCKET_NOT_FOUND)
    assert name in report.condition.message
    assert counter.writes == 0
    names = {b["Name"] for b in stack.s3_client().list_buckets()["Buckets"]}
    assert name not in names


def test_a_missing_bucket_is_created_when_the_spec_opts_in(stack: StackEnv) -> None:
    client, _ = _client(stack)
    name = "t-lokifi-created-by-the-operator"
    try:
        report = _reconcile(
            stack,
            _spec(stack, [{"name": name, "create": True, "lifecycle": [SEED_RULE]}]),
            client,
        )
        assert report.condition.status == "True", report.condition.message
        assert report.actions[0] == f"created bucket {name}"
        assert _rules(stack, name) == [SEED_DOCUMENT]
    finally:
        s3 = stack.s3_client()
        if name in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.delete_bucket(Bucket=name)


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(("AKIAWRONGWRONGWRONG0", "Wrong-Secret-Key-Value"), id="unknown_access_key"),
        pytest.param((None, "Wrong-Secret-Key-Value"), id="right_access_key_wrong_secret"),
    ],
)
def test_bad_credentials_are_access_denied_without_any_key_in_the_report(
    stack: StackEnv, s3_bucket: str, keys: tuple[str | None, str]
) -> None:
    access_key = keys[0] or stack.aws_access_key_id
    secret_key = keys[1]
    report = reconcile_object_storage(
        _spec(stack, [{"name": s3_bucket, "lifecycle": [SEED_RULE]}]), access_key, secret_key
    )

    assert (report.condition.status, report.condition.reason) == ("False", Reason.ACCESS_DENIED)
    everything = json.dumps(
        [report.condition.model_dump(), status_json(report.status), report.actions]
    )
    for key in (access_key, secret_key, stack.aws_access_key_id, stack.aws_secret_access_key):
        assert key not in everything
    with pytest.raises(stack.s3_client().exceptions.ClientError, match="NoSuchLifecycle"):
        _rules(stack, s3_bucket)


def test_an_unreachable_endpoint_is_endpoint_unreachable(stack: StackEnv, s3_bucket: str) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    spec = _spec(stack, [{"name": s3_bucket}, {"name": "t-second-bucket"}], endpoint=endpoint)
    report = reconcile_object_storage(spec, stack.aws_access_key_id, stack.aws_secret_access_key)

    assert (report.condition.status, report.condition.reason) == (
        "False",
        Reason.ENDPOINT_UNREACHABLE,
    )
    assert [b["reason"] for b in status_json(report.status)["objectStorage"]["buckets"]] == [
        Reason.ENDPOINT_UNREACHABLE,
        Reason.ENDPOINT_UNREACHABLE,
    ]
    # Bucket names are decided by the spec alone: the Secret keeps them while S3 is away.
    assert len(report.secret_data) == 2


def test_a_rule_s3_would_refuse_never_reaches_s3(stack: StackEnv, s3_bucket: str) -> None:
    # Admission refuses STANDARD_IA before 30 days; model_construct stands for a spec that
    # skipped it. (The local S3 server would even accept this rule: the check is ours.)
    early = LifecycleRuleSpec.model_construct(
        id="TooEarly",
        prefix="",
        enabled=True,
        transitions=[TransitionSpec.model_construct(afterDays=10, storageClass="STANDARD_IA")],
        expirationDays=None,
        abortIncompleteUploadsAfterDays=None,
    )
    spec = _spec(stack, [{"name": s3_bucket}])
    spec = spec.model_copy(
        update={"buckets": [spec.buckets[0].model_copy(update={"lifecycle": [early]})]}
    )
    client, counter = _client(stack)

    report = _reconcile(stack, spec, client)

    assert (report.condition.status, report.condition.reason) == ("False", Reason.INVALID_LIFECYCLE)
    assert "TooEarly" in report.condition.message
    assert "30 days" in report.condition.message
    assert counter.writes == 0


def test_the_merged_document_may_not_exceed_s3s_thousand_rules(
    stack: StackEnv, s3_bucket: str
) -> None:
    foreign = [
        {
            "ID": f"team-rule-{i:04d}",
            "Filter": {"Prefix": f"t{i}/"},
            "Status": "Enabled",
            "Expiration": {"Days": 30},
        }
        for i in range(999)
    ]
    stack.s3_client().put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": foreign}
    )
    rules = [SEED_RULE, {"id": "ExpireScratch", "prefix": "scratch/", "expirationDays": 3}]
    client, counter = _client(stack)

    report = _reconcile(stack, _spec(stack, [{"name": s3_bucket, "lifecycle": rules}]), client)

    assert report.condition.reason == Reason.INVALID_LIFECYCLE
    assert "1001 lifecycle rules (999 not managed by the operator)" in report.condition.message
    assert counter.writes == 0
