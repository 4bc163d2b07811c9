"""The API server itself refuses a bad LokifiStorage, naming the field, before any operator runs.

Each case starts from the valid minimal example and breaks one thing; `kubectl apply
--dry-run=server` runs the CRD's schema and CEL rules without storing anything.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackfixtures import REPO, StackEnv

EXAMPLES = [
    REPO / "examples" / "lokifistorage-full.yaml",
    REPO / "examples" / "lokifistorage-minimal.yaml",
    REPO / "examples" / "local" / "lokifistorage.yaml",
]


def _load(path: Path, namespace: str) -> dict[str, Any]:
    resource: dict[str, Any] = yaml.safe_load(path.read_text())
    resource["metadata"]["namespace"] = namespace
    return resource


def _dry_run(stack: StackEnv, resource: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stack.kubectl_argv("apply", "--dry-run=server", "-f", "-"),
        input=json.dumps(resource),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_shipped_examples_are_admitted(
    kube_stack: StackEnv, crd: str, k8s_namespace: str, example: Path
) -> None:
    result = _dry_run(kube_stack, _load(example, k8s_namespace))
    assert result.returncode == 0, result.stderr


def _full(namespace: str) -> dict[str, Any]:
    return _load(REPO / "examples" / "lokifistorage-full.yaml", namespace)


def _ia_after_10_days(spec: dict[str, Any]) -> None:
    rule = spec["objectStorage"]["buckets"][0]["lifecycle"][0]
    rule["transitions"] = [{"afterDays": 10, "storageClass": "STANDARD_IA"}]


def _redis_dir(spec: dict[str, Any]) -> None:
    spec["redis"]["settings"]["dir"] = "/var/lib/redis-elsewhere"


def _archive_after_compress(spec: dict[str, Any]) -> None:
    spec["postgres"]["tables"][0]["archive"]["afterDays"] = 900


def _segment_by_time(spec: dict[str, Any]) -> None:
    spec["postgres"]["tables"][0]["archive"]["segmentBy"] = ["user_id", "created_at"]


def _duplicate_table(spec: dict[str, Any]) -> None:
    spec["postgres"]["tables"].append(copy.deepcopy(spec["postgres"]["tables"][0]))


def _bad_interval(spec: dict[str, Any]) -> None:
    spec["postgres"]["tables"][0]["partitionBy"]["interval"] = "fortnight"


def _malicious_table(spec: dict[str, Any]) -> None:
    spec["postgres"]["tables"][0]["name"] = "ai_messages; DROP TABLE users"


def _premake_a_year_of_days_by_256_ranges(spec: dict[str, Any]) -> None:
    table = spec["postgres"]["tables"][0]
    table["partitionBy"]["interval"] = "day"
    table["premake"] = 366
    table["subpartitionBy"]["count"] = 256


def _equals_a_list(spec: dict[str, Any]) -> None:
    spec["postgres"]["tables"][1]["indexes"][0]["where"]["equals"] = [False]


def _conn_secret_is_the_primarys(spec: dict[str, Any]) -> None:
    spec["postgres"]["connectionSecret"]["name"] = spec["postgres"]["primary"]["secretRef"]["name"]


def _conn_secret_is_the_s3_keys(spec: dict[str, Any]) -> None:
    spec["postgres"]["connectionSecret"]["name"] = spec["objectStorage"]["credentialsSecretRef"][
        "name"
    ]


def _conn_secret_is_the_verify_targets(spec: dict[str, Any]) -> None:
    spec["backups"]["verifyTarget"] = {"secretRef": {"name": "lokifi-verify-db", "key": "url"}}
    spec["postgres"]["connectionSecret"]["name"] = "lokifi-verify-db"


def _endpoint_with_userinfo(spec: dict[str, Any]) -> None:
    spec["objectStorage"]["endpoint"] = "https://AKIAEXAMPLE:hunter2hunter2@s3.example.com"


def _endpoint_with_userinfo_and_slash(spec: dict[str, Any]) -> None:
    # A secret key holding "/" ends the URL's authority early: still refused.
    spec["objectStorage"]["endpoint"] = "https://AKIAEXAMPLE:hunter2/hunter2hunter2@s3.example.com"


def _plain_http_endpoint(spec: dict[str, Any]) -> None:
    spec["objectStorage"]["endpoint"] = "http://s3.example.com"


BROKEN = {
    "93,696 partitions made ahead": (
        _premake_a_year_of_days_by_256_ranges,
        "spec.postgres.tables[0].premake",
        "partitions made ahead",
    ),
    "partial index equals a list": (_equals_a_list, "where.equals", "at most 0 items"),
    "transition to STANDARD_IA after 10 days": (_ia_after_10_days, "afterDays", "30"),
    "redis setting dir": (_redis_dir, "settings", "dir"),
    "archive not before compress": (_archive_after_compress, "archive", "compressAfterDays"),
    "segment by the partition key": (_segment_by_time, "segmentBy", "partitionBy.column"),
    "duplicate table names": (_duplicate_table, "spec.postgres.tables", "Duplicate value"),
    "unknown interval": (_bad_interval, "interval", "fortnight"),
    "malicious table name": (_malicious_table, "spec.postgres.tables[0].name", "should match"),
    "connection Secret named like the primary's": (
        _conn_secret_is_the_primarys,
        "spec.postgres.connectionSecret.name",
        "must differ from every Secret the spec reads",
    ),
    "connection Secret named like the S3 keys": (
        _conn_secret_is_the_s3_keys,
        "spec.postgres.connectionSecret.name",
        "must differ from every Secret the spec reads",
    ),
    "connection Secret named like the verify target's": (
        _conn_secret_is_the_verify_targets,
        "spec.postgres.connectionSecret.name",
        "must differ from every Secret the spec reads",
    ),
    "endpoint with user:password": (
        _endpoint_with_userinfo,
        "spec.objectStorage.endpoint",
        "must not carry user:password@",
    ),
    "endpoint with user:password holding a slash": (
        _endpoint_with_userinfo_and_slash,
        "spec.objectStorage.endpoint",
        "must not carry user:password@",
    ),
    "plain http endpoint without allowPlainHttp": (
        _plain_http_endpoint,
        "spec.objectStorage.endpoint",
        "allowPlainHttp",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_resource_is_refused_naming_the_field(
    kube_stack: StackEnv, crd: str, k8s_namespace: str, case: str
) -> None:
    breaks, field, detail = BROKEN[case]
    resource = _full(k8s_namespace)
    breaks(resource["spec"])

    result = _dry_run(kube_stack, resource)

    assert result.returncode != 0, f"{case}: the API server admitted it"
    assert field in result.stderr, result.stderr
    assert detail in result.stderr, result.stderr
    assert "hunter2hunter2" not in result.stderr, "the refusal quotes the password"
