"""The seed's resource (fixtures/seed/: examples/lokifistorage-full.yaml on the local stack) and
the commands admins run against it: `lokifi-storage plan` and the `kubectl lks` plugin."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from e2e_full import FullExample
from e2e_operator import CLI, get_json, kubectl, render, wait_for

from stackfixtures import REPO, StackEnv

BIN = Path(sys.executable).parent


def seed_manifest(example: FullExample, **overrides: object) -> str:
    values = {"dry_run": "false", "abort_days": 7, "redis_extra": "", **example.values}
    values.update(overrides)
    return render("seed", "lokifistorage.yaml", **values)


def apply_seed(example: FullExample, **overrides: object) -> None:
    """Apply the seed's resource, with this checkout's CRD applied again first: the CRD is
    cluster-wide, and a test session of an older checkout may have applied its own since."""
    crd = REPO / "crds" / "lokifistorage.yaml"
    kubectl(example.stack, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kubectl(example.stack, "apply", "-f", "-", input_text=seed_manifest(example, **overrides))


def _env(stack: StackEnv) -> dict[str, str]:
    assert stack.kubeconfig is not None
    assert stack.kubectl is not None
    # kubectl finds plugins on PATH: this checkout's venv first, so the plugin under test runs.
    path = os.pathsep.join([str(BIN), str(Path(stack.kubectl).parent), os.environ["PATH"]])
    return {**os.environ, "KUBECONFIG": stack.kubeconfig, "PATH": path, "NO_COLOR": ""}


def lokifi_storage(stack: StackEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """`lokifi-storage ARGS` with the stack's kubeconfig; stdout is a pipe (no colour)."""
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=180, env=_env(stack), check=False
    )


def kubectl_lks(stack: StackEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl lks ARGS`: kubectl itself, finding the plugin on PATH as an admin's would."""
    assert stack.kubectl is not None
    return subprocess.run(
        [stack.kubectl, "lks", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(stack),
        check=False,
    )


# A Redis setting no other test declares: the cluster is shared, and since settings have one
# owner (claims), a test declaring another maxmemory than its neighbours' would conflict.
SETTING, VALUE = "hz", "11"
EXTRA = f'\n      {SETTING}: "{VALUE}"'


@contextlib.contextmanager
def restored_setting(stack: StackEnv, key: str = SETTING) -> Iterator[dict[str, str]]:
    """`key` on every node as it is now (yielded), set back afterwards."""
    cluster = stack.redis_cluster()
    before: dict[str, str] = {}
    try:
        per_node = cluster.config_get(key, target_nodes=cluster.ALL_NODES)
        before.update({node: values[key] for node, values in per_node.items()})
        yield before
    finally:
        for node_name, value in before.items():
            host, _, port = node_name.rpartition(":")
            node = cluster.get_node(host=host, port=int(port))
            if node is not None:
                with contextlib.suppress(Exception):
                    cluster.config_set(key, value, target_nodes=node)
                    cluster.config_rewrite(target_nodes=node)
        cluster.close()


def setting_on_nodes(stack: StackEnv, key: str = SETTING) -> dict[str, str]:
    cluster = stack.redis_cluster()
    try:
        per_node = cluster.config_get(key, target_nodes=cluster.ALL_NODES)
    finally:
        cluster.close()
    return {node: values[key] for node, values in per_node.items()}


OLD_DAYS = (400, 800, 2600)  # archived; archived and due for compression; due for export


def insert_old_rows(example: FullExample) -> None:
    """Three rows each 400, 800 and 2600 days old, into the DEFAULT partition the operator
    made: it creates their months, archives the two older than a year and reports the compress
    and export work; call once the resource is Ready."""
    now = datetime.now(UTC)
    with psycopg.connect(example.database.primary_url, autocommit=True) as conn:
        for days in OLD_DAYS:
            conn.execute(
                "INSERT INTO ai_messages (user_id, thread_id, content, created_at)"
                " SELECT g * 700000, g, 'old message ' || g, %s FROM generate_series(0, 2) g",
                (now - timedelta(days=days),),
            )


def wait_old_rows_settled(example: FullExample) -> dict[str, Any]:
    """The resource once the old rows are placed, archived and their Job work reported."""

    def settled() -> dict[str, Any] | None:
        body = get_json(example.stack, example.namespace, "lks", "lokifi-prod") or {}
        tables = (body.get("status") or {}).get("partitions") or []
        (table,) = [p for p in tables if p["table"] == "ai_messages"]
        done = table["archived"] == 2 and table["inDefault"] == 0 and table["pendingExport"] == 1
        return body if done else None

    return wait_for(settled, 120, "old rows placed, archived and their Job work reported")
