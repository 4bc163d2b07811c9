"""What the operator's partitions CronJob runs does the pending work on the real servers.

The local control plane has no kubelet, so no Job ever runs there; this test takes the
command line and environment out of the CronJob the operator builds, fills the secretKeyRef
variables from the Secret values the test owns, and runs it as the pod would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from partitionkit import partitions_of, query
from test_partitions_export import lifecycle_spec, seeded

from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.builders.cronjobs import JobSettings, desired_cronjobs
from lokifi_storage.builders.labels import Owner
from podenv import container_env, job_container
from stackfixtures import PgDatabase, StackEnv

CLI = Path(sys.executable).with_name("lokifi-storage")


def test_the_export_cronjob_command_exports_verifies_and_drops_the_expired_partition(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    table = lifecycle_spec(s3_bucket)
    seeded(pg_database, table, rows=1500)
    spec = LokifiStorageSpec.model_validate(
        {
            "postgres": {
                "primary": {"secretRef": {"name": "db", "key": "url"}},
                "tables": [table.model_dump(by_alias=True, exclude_none=True)],  # type: ignore[attr-defined]
            },
            "objectStorage": {
                "endpoint": stack.s3_endpoint,
                "allowPlainHttp": True,
                "region": stack.aws_region,
                "credentialsSecretRef": {"name": "s3"},
            },
        }
    )
    jobs = desired_cronjobs(Owner("ns", "demo", "uid"), spec, JobSettings())
    job = next(j for j in jobs if j["metadata"]["name"] == "demo-partitions-export")
    container = job_container(job)
    secrets = {
        ("db", "url"): str(pg_database),
        ("s3", "AWS_ACCESS_KEY_ID"): stack.aws_access_key_id,
        ("s3", "AWS_SECRET_ACCESS_KEY"): stack.aws_secret_access_key,
    }
    assert str(pg_database) not in " ".join(container["args"])

    run = subprocess.run(
        [str(CLI), *container["args"]],
        env={"PATH": "/usr/bin:/bin", **container_env(container, secrets)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "exported archive.ai_messages_p2024_10" in run.stdout
    assert "ai_messages_p2024_10" not in dict(partitions_of(pg_database, "archive.ai_messages"))
    # Today every seeded month is past dropAfterDays: each left the database only with its
    # object in the bucket, and every row went with one of them.
    s3 = stack.s3_client()
    listed = s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    months = ["2024_10", "2024_11", "2024_12", "2025_01", "2025_02"]
    for month in months:
        assert any(f"ai_messages_p{month}" in o["Key"] for o in listed), (month, listed)
    assert query(pg_database, "SELECT count(*) FROM ai_messages") == [(0,)]
    manifests = [o["Key"] for o in listed if o["Key"].endswith(".manifest.json")]
    assert len(manifests) == len(months), manifests
    exported = [
        json.loads(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()) for key in manifests
    ]
    assert sum(m["rows"] for m in exported) == 1500, exported
