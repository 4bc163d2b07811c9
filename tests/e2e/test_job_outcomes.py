"""A failing CronJob does not look healthy (path 9).

The control plane here has no kubelet, so the export CronJob the operator wrote is run as its
pod would run it: the command line and environment are taken from the stored CronJob and the
secretKeyRef variables filled from the test's Secrets. The first run fails (its bucket does not
exist), and the operator's next reconcile turns PartitionsReady False with the job's own reason;
after a good run it is True again.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg
from e2e_operator import CLI, create_secret, get_json, kubectl

from lokifi_storage.api import conditions as types
from lokifi_storage.clients.kube import KubeClient
from lokifi_storage.reconcile.resource import ResourceReconciler
from podenv import container_env, job_container
from stackfixtures import PgDatabase, StackEnv

TABLE_SQL = """
CREATE TABLE ai_messages (
    id bigserial NOT NULL,
    user_id bigint NOT NULL,
    content text NOT NULL,
    created_at timestamptz NOT NULL
) PARTITION BY RANGE (created_at);
CREATE TABLE ai_messages_default PARTITION OF ai_messages DEFAULT;
INSERT INTO ai_messages (user_id, content, created_at)
SELECT g, 'message ' || g, '2015-10-01'::timestamptz + g * interval '1 hour'
  FROM generate_series(1, 200) AS g;
"""


def _resource(namespace: str, stack: StackEnv, bucket: str) -> dict[str, Any]:
    return {
        "apiVersion": "storage.lokifi.ai/v1alpha1",
        "kind": "LokifiStorage",
        "metadata": {"name": "jobs", "namespace": namespace},
        "spec": {
            "postgres": {
                "primary": {"secretRef": {"name": "db", "key": "url"}},
                "tables": [
                    {
                        "name": "ai_messages",
                        "partitionBy": {"column": "created_at", "interval": "month"},
                        "premake": 1,
                        "retention": {
                            "dropAfterDays": 440,
                            "exportTo": {"bucket": bucket, "storageClass": "STANDARD"},
                        },
                    }
                ],
            },
            "objectStorage": {
                "endpoint": stack.s3_endpoint,
                "allowPlainHttp": True,
                "region": stack.aws_region,
                "credentialsSecretRef": {"name": "s3"},
            },
        },
    }


def _run_export_job(
    stack: StackEnv, namespace: str, secrets: dict[tuple[str, str], str]
) -> subprocess.CompletedProcess[str]:
    job = get_json(stack, namespace, "cronjob", "jobs-partitions-export")
    assert job is not None
    container = job_container(job)
    env = {"PATH": "/usr/bin:/bin", **container_env(container, secrets)}
    return subprocess.run(
        [str(CLI), *container["args"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _partitions_ready(
    reconciler: ResourceReconciler, stack: StackEnv, namespace: str
) -> dict[str, Any]:
    """Reconcile once, then PartitionsReady as the API server stores it."""
    reconciler.reconcile(namespace, "jobs")
    obj = get_json(stack, namespace, "lks", "jobs")
    assert obj is not None
    conds = {c["type"]: c for c in obj["status"]["conditions"]}
    condition: dict[str, Any] = conds[types.PARTITIONS_READY]
    return condition


def test_a_failed_export_job_turns_partitions_ready_false_until_a_good_run(
    kube_stack: StackEnv, crd: str, k8s_namespace: str, pg_database: PgDatabase, s3_bucket: str
) -> None:
    stack, ns = kube_stack, k8s_namespace
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(TABLE_SQL.encode())
    secrets = {
        ("db", "url"): str(pg_database),
        ("s3", "AWS_ACCESS_KEY_ID"): stack.aws_access_key_id,
        ("s3", "AWS_SECRET_ACCESS_KEY"): stack.aws_secret_access_key,
    }
    create_secret(stack, ns, "db", url=str(pg_database))
    create_secret(
        stack,
        ns,
        "s3",
        AWS_ACCESS_KEY_ID=stack.aws_access_key_id,
        AWS_SECRET_ACCESS_KEY=stack.aws_secret_access_key,
    )
    kubectl(stack, "apply", "-f", "-", input_text=json.dumps(_resource(ns, stack, s3_bucket)))
    assert stack.kubeconfig is not None
    kube = KubeClient.from_environment(stack.kubeconfig)
    reconciler = ResourceReconciler(kube)
    try:
        before = _partitions_ready(reconciler, stack, ns)
        assert before["status"] == "True", before
        assert "await `lokifi-storage partitions export`" in before["message"]

        # The bucket is gone when the job runs: it fails, and the partition stays.
        stack.s3_client().delete_bucket(Bucket=s3_bucket)
        failed = _run_export_job(stack, ns, secrets)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        after_failure = _partitions_ready(reconciler, stack, ns)
        assert after_failure["status"] == "False", after_failure
        assert after_failure["reason"] not in ("Reconciled", "MaintenancePending")
        assert "partitions-export" in after_failure["message"]
        assert "ai_messages_p2015_10" in after_failure["message"]
        assert str(pg_database) not in json.dumps(after_failure)

        # A good run: True again, and the partition went to the bucket.
        stack.s3_client().create_bucket(Bucket=s3_bucket)
        good = _run_export_job(stack, ns, secrets)
        assert good.returncode == 0, good.stdout + good.stderr
        assert "exported public.ai_messages_p2015_10" in good.stdout
        after_success = _partitions_ready(reconciler, stack, ns)
        assert after_success["status"] == "True", after_success
    finally:
        kube.close()
