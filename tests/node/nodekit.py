"""The chart installed in the stack's node, as a user installs it: helm, kubectl and Pods.

Pods cannot reach 127.0.0.1 of this machine (their loopback is their own); they reach the
stack's servers at the node's gateway address (LOKIFI_NODE_GATEWAY in stack.env), where the
stack relays to the servers. So every address a Pod is handed - Secrets, the resource's Redis
nodes and S3 endpoint - names the gateway instead of 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_operator import get_json, kubectl

from helmchart import CHART, helm
from stackfixtures import REPO, PgDatabase, StackEnv

# Named after the chart, so every object the chart makes is named this too.
RELEASE = "lokifi-storage-operator"


def for_pods(stack: StackEnv, text: str) -> str:
    """`text` with the stack's loopback address replaced by the node's gateway."""
    return text.replace("127.0.0.1", gateway(stack))


def gateway(stack: StackEnv) -> str:
    return stack.env["LOKIFI_NODE_GATEWAY"]


def build_and_import_image() -> tuple[str, float]:
    """`python -m stack image --import`: (image name, seconds it took)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "stack", "image", "--import"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the operator image failed:\n{result.stderr[-4000:]}")
    name = result.stdout.split()[0]
    return name, time.monotonic() - started


@dataclass
class Release:
    """One helm release of the chart in its own namespace, serving that namespace."""

    stack: StackEnv
    namespace: str
    image: str
    values_path: Path
    values: dict[str, Any] = field(default_factory=dict)

    def install_values(self, **extra: Any) -> dict[str, Any]:
        repository, _, tag = self.image.rpartition(":")
        values = {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "watchNamespaces": [self.namespace],
            "resyncSeconds": 15,
            "leaseSeconds": 15,
        }
        values.update(extra)
        return values

    def helm(self, verb: str, *args: str, **values: Any) -> str:
        self.values = self.install_values(**values)
        self.values_path.write_text(json.dumps(self.values))
        result = helm(
            verb,
            RELEASE,
            str(CHART),
            "--namespace",
            self.namespace,
            "--kubeconfig",
            str(self.stack.kubeconfig),
            "--values",
            str(self.values_path),
            *args,
        )
        return result.stdout

    def uninstall(self) -> None:
        helm(
            "uninstall",
            RELEASE,
            "--namespace",
            self.namespace,
            "--kubeconfig",
            str(self.stack.kubeconfig),
            "--wait",
            check=False,
        )

    def pods(self) -> list[dict[str, Any]]:
        listed = get_json(
            self.stack,
            self.namespace,
            "pods",
            "-l",
            f"app.kubernetes.io/instance={RELEASE}",
        )
        return [
            p for p in (listed or {}).get("items", []) if not p["metadata"].get("deletionTimestamp")
        ]

    def kubectl(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        return kubectl(self.stack, "-n", self.namespace, *args, check=check, input_text=input_text)


@dataclass
class World:
    """A namespace enforcing the restricted Pod Security Standard, with the full example's
    database, buckets and Secrets (Pod addresses), and the chart installed there."""

    stack: StackEnv
    namespace: str
    database: PgDatabase
    buckets: dict[str, str]
    release: Release
    installed_at: float = 0.0
    notes: dict[str, float] = field(default_factory=dict)


def create_pod_secrets(stack: StackEnv, namespace: str, database: PgDatabase) -> None:
    """The full example's four Secrets, with addresses Pods can reach."""
    from e2e_operator import create_secret

    create_secret(stack, namespace, "lokifi-db", url=for_pods(stack, database.primary_url))
    create_secret(
        stack, namespace, "lokifi-db-replica-1", url=for_pods(stack, database.replica_url)
    )
    create_secret(stack, namespace, "lokifi-redis", password=stack.redis_password)
    create_secret(
        stack,
        namespace,
        "lokifi-s3",
        AWS_ACCESS_KEY_ID=stack.aws_access_key_id,
        AWS_SECRET_ACCESS_KEY=stack.aws_secret_access_key,
    )


def secret_values(stack: StackEnv, database: PgDatabase) -> list[str]:
    """Every secret value a log must never show."""
    from urllib.parse import urlsplit

    password = urlsplit(database.primary_url).password or ""
    return [p for p in (password, stack.redis_password, stack.aws_secret_access_key) if p]


def job_finished(release: Release, job: str) -> str | None:
    """'Complete' or 'Failed' once the Job has finished, else None."""
    obj = get_json(release.stack, release.namespace, "job", job)
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


def job_logs(release: Release, job: str) -> str:
    return release.kubectl("logs", f"job/{job}", "--all-containers", check=False)
