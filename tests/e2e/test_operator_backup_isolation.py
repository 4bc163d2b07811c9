"""Two LokifiStorage resources with the same name in two namespaces share a backup bucket: each
reports only its own backups (path 2, with the operator against the real API server, the real
PostgreSQL and the real S3 server).

Before backups were keyed by namespace and source, both listed `<prefix><name>/` and the one
without any backup reported the other's as its own (a false-green BackupsReady).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from e2e_full import FullExample, create_example_secrets
from e2e_operator import OperatorFactory, get_json, kubectl, render, wait_for

from podenv import container_env, job_container
from stackfixtures import create_database, drop_database, unique_name

NAME = "steady"  # the noop fixture's resource


def _run_cronjob(stack: Any, cronjob: dict[str, Any], primary_url: str) -> str:
    """Run the CronJob's container command with its env filled from the Secrets' values;
    return the key of the backup it made."""
    container = job_container(cronjob)
    secrets = {
        ("lokifi-db", "url"): primary_url,
        ("lokifi-s3", "AWS_ACCESS_KEY_ID"): stack.aws_access_key_id,
        ("lokifi-s3", "AWS_SECRET_ACCESS_KEY"): stack.aws_secret_access_key,
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "LOKIFI_PG_BIN": stack.pg_bin,
        **container_env(container, secrets),
    }
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lokifi-storage")), *container["args"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    match = re.search(r"to s3://[^/]+/(\S+)", run.stdout + run.stderr)
    assert match is not None, run.stdout
    return match[1]


def _backups(stack: Any, namespace: str) -> list[dict[str, Any]] | None:
    obj = get_json(stack, namespace, "lks", NAME)
    status = (obj or {}).get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    if "BackupsReady" not in conditions:
        return None
    return list(status.get("backups") or [])


def test_same_named_resources_in_two_namespaces_report_only_their_own_backups(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns_a = full_example.stack, full_example.namespace
    ns_b = unique_name(f"{ns_a}-b", 63, sep="-")
    db_b = unique_name("backup_isolation_b", 63)
    kubectl(stack, "create", "namespace", ns_b)
    database_b = create_database(stack, db_b)
    try:
        full_example.create_secrets()
        create_example_secrets(stack, ns_b, database_b)
        for namespace in (ns_a, ns_b):
            manifest = render(
                "noop", "lokifistorage.yaml", **{**full_example.values, "namespace": namespace}
            )
            kubectl(stack, "apply", "-f", "-", input_text=manifest)
            start_operator(namespace)
        # Namespace A's backup CronJob runs once, as its pod would (no kubelet here).
        cronjob = wait_for(
            lambda: get_json(stack, ns_a, "cronjob", f"{NAME}-backup-daily"),
            120,
            "namespace A's backup CronJob",
        )
        made = _run_cronjob(stack, cronjob, full_example.database.primary_url)

        mine = wait_for(
            lambda: (b := _backups(stack, ns_a)) and b[0].get("count") and b,
            120,
            "namespace A's backup status",
        )
        assert mine[0]["count"] == 1
        assert mine[0]["lastKey"] == made
        # Two more resyncs (5 s each) of B after A's backup exists: had B listed A's folder,
        # its status would show that backup by now.
        time.sleep(12)
        theirs = wait_for(lambda: _backups(stack, ns_b), 120, "namespace B's backup status")
        assert theirs[0].get("count", 0) == 0, theirs
        assert "lastKey" not in theirs[0], theirs
        ready_b = {
            c["type"]: c for c in (get_json(stack, ns_b, "lks", NAME) or {})["status"]["conditions"]
        }["BackupsReady"]
        assert ready_b["reason"] == "BackupPending", ready_b
    finally:
        kubectl(stack, "delete", "namespace", ns_b, "--wait=false", "--ignore-not-found")
        drop_database(stack, db_b)
