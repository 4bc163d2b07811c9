"""The chart's operator as a Pod in the stack's node, and its CronJobs as Jobs.

One release serves this module's namespace; the tests run in order on it (install, the full
example Ready, a Job from each CronJob, a CronJob on its own schedule, upgrade, uninstall).
Each test also stands alone: the module fixture installs and the first check waits for Ready.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from e2e_full import example_values
from e2e_operator import conditions, create_secret, get_json, render, wait_for
from nodekit import RELEASE, World, for_pods, job_finished, job_logs, secret_values

from lokifi_storage.builders.names import (
    LEASE_NAME,
    backup_cronjob_name,
    partitions_cronjob_name,
    vacuum_cronjob_name,
)

NAME = "lokifi-prod"
CRD = Path(__file__).resolve().parents[2] / "crds" / "lokifistorage.yaml"
CLI = Path(sys.executable).with_name("lokifi-storage")
# Old enough to be exported (dropAfterDays 2555) and one only old enough to be compressed.
EXPIRED, COMPRESSIBLE = (2018, 1), (2024, 1)


def _partition(year: int, month: int) -> str:
    return f"ai_messages_p{year:04d}_{month:02d}"


def _seed_old_months(world: World, *months: tuple[int, int]) -> None:
    """Past months of messages, as the application wrote them before the operator came."""
    with psycopg.connect(world.database.primary_url, autocommit=True) as conn:
        for year, month in months or (EXPIRED, COMPRESSIBLE):
            start = dt.date(year, month, 1)
            end = dt.date(year + month // 12, month % 12 + 1, 1)
            conn.execute(
                f"CREATE TABLE {_partition(year, month)} PARTITION OF ai_messages"
                f" FOR VALUES FROM ('{start}') TO ('{end}')"
            )
            conn.execute(
                "INSERT INTO ai_messages (user_id, thread_id, content, created_at)"
                " SELECT g %% 7, g %% 3, 'message ' || g, %s::timestamptz + g * interval '1 minute'"
                " FROM generate_series(1, 200) g",
                (str(start),),
            )


def _apply_full_example(world: World, **overrides: object) -> None:
    # The CRD is cluster-wide: apply this checkout's again, the one the image's code knows.
    world.release.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    values = {**example_values(world.stack, world.namespace, world.buckets), **overrides}
    manifest = for_pods(world.stack, render("ready", "lokifistorage.yaml", **values))
    if "allowPlainHttp" in CRD.read_text():
        # The gateway is not loopback: plain http to it has to be asked for.
        manifest = manifest.replace(
            "    endpoint: http://", "    allowPlainHttp: true\n    endpoint: http://"
        )
    world.release.kubectl("apply", "-f", "-", input_text=manifest)


def _ready(world: World) -> None:
    if get_json(world.stack, world.namespace, "lokifistorage", NAME) is None:
        _seed_old_months(world)
        _apply_full_example(world)
    world.release.kubectl(
        "wait", "--for=condition=Ready", f"lokifistorage/{NAME}", "--timeout=240s"
    )
    world.notes.setdefault("install_to_ready_s", time.monotonic() - world.installed_at)


def test_the_chart_runs_the_operator_as_a_pod_that_brings_the_full_example_to_ready(
    world: World,
) -> None:
    _ready(world)
    print(f"helm install -> full example Ready: {world.notes['install_to_ready_s']:.0f}s")
    release = world.release
    (pod,) = release.pods()
    # Admitted under the restricted Pod Security Standard and Ready through its own probes.
    labels = get_json(world.stack, "", "namespace", world.namespace)["metadata"]["labels"]  # type: ignore[index]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"
    container = pod["spec"]["containers"][0]
    assert container["image"] == release.image
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= container.keys()
    # It talks to the API with its ServiceAccount's token, mounted by the API server.
    assert pod["spec"]["serviceAccountName"] == RELEASE
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts
    assert not any(e["name"] == "KUBECONFIG" for e in container.get("env", []))
    lease = get_json(world.stack, world.namespace, "lease", LEASE_NAME)
    assert lease is not None
    assert lease["spec"]["holderIdentity"].startswith(pod["metadata"]["name"])

    obj = get_json(world.stack, world.namespace, "lokifistorage", NAME)
    conds = conditions(obj)
    for kind in ("PostgresReady", "RedisReady", "ObjectStorageReady", "BackupsReady"):
        if kind in conds:
            assert conds[kind]["status"] == "True", conds[kind]
    # The Redis Cluster, formed over loopback, was reached at the node's gateway.
    secret = get_json(world.stack, world.namespace, "secret", "lokifi-db-conn")
    assert secret is not None
    nodes = base64.b64decode(secret["data"]["REDIS_CLUSTER_NODES"]).decode()
    assert world.stack.env["LOKIFI_NODE_GATEWAY"] in nodes
    log = release.kubectl("logs", f"deployment/{RELEASE}")
    for value in secret_values(world.stack, world.database):
        assert value not in log
    # Inside the container: the user, the CLI and the PostgreSQL client the jobs use.
    shown = release.kubectl(
        "exec", f"deployment/{RELEASE}", "--", "sh", "-c",
        'id -u; id -g; command -v lokifi-storage; "$LOKIFI_PG_BIN/pg_dump" --version',
    ).split("\n")  # fmt: skip
    assert shown[:3] == ["65532", "65532", "/opt/lokifi/bin/lokifi-storage"], shown
    assert shown[3].startswith("pg_dump (PostgreSQL) 15."), shown


def test_the_imported_image_is_the_recipes_and_its_archive_checks_out(world: World) -> None:
    """The archive's blobs match their digests (what a registry checks on push) and its config
    is the one tests/chart compares with the Dockerfile."""

    def image(flag: str) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-m", "stack", "image", flag],
            cwd=CRD.parents[1], capture_output=True, text=True, check=True, timeout=1800,
        ).stdout  # fmt: skip
        loaded: dict[str, object] = json.loads(out)
        return loaded

    assert image("--inspect") == image("--recipe")["Config"]


def _run_job(world: World, cronjob: str, job: str, timeout: float = 300) -> str:
    world.release.kubectl("create", "job", job, f"--from=cronjob/{cronjob}")
    outcome = wait_for(lambda: job_finished(world.release, job), timeout, f"job {job}", 2)
    logs = job_logs(world.release, job)
    assert outcome == "Complete", logs
    for value in secret_values(world.stack, world.database):
        assert value not in logs, f"a secret value is in the logs of {job}"
    return logs


def test_a_job_made_from_each_cronjob_runs_to_completion(world: World) -> None:
    _ready(world)
    stack, buckets = world.stack, world.buckets

    logs = _run_job(world, backup_cronjob_name(NAME, "daily"), "backup-now")
    s3 = stack.s3_client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=buckets["backups"]).get("Contents", [])]
    assert any(k.endswith(".manifest.json") for k in keys), keys
    assert len(keys) >= 2, keys
    verify = subprocess.run(
        [str(CLI), "backup", "verify", "--bucket", buckets["backups"], "--name", NAME,
         "--namespace", world.namespace,
         "--schedule", "daily"],
        env={"PATH": "/usr/bin:/bin", "LOKIFI_PRIMARY_URL": world.database.primary_url,
             "LOKIFI_S3_ENDPOINT": stack.s3_endpoint, "LOKIFI_PG_BIN": stack.pg_bin,
             "AWS_ACCESS_KEY_ID": stack.aws_access_key_id,
             "AWS_SECRET_ACCESS_KEY": stack.aws_secret_access_key,
             "AWS_DEFAULT_REGION": stack.aws_region},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert logs.strip(), "the backup Job logged nothing"

    _run_job(world, vacuum_cronjob_name(NAME), "vacuum-now")

    compressed = _run_job(world, partitions_cronjob_name(NAME, "compress"), "compress-now")
    assert _partition(*COMPRESSIBLE) in compressed, compressed
    exported = _run_job(world, partitions_cronjob_name(NAME, "export"), "export-now")
    expired = _partition(*EXPIRED)
    # One line per partition, written once the object is uploaded and verified: "...; dropped".
    (line,) = [x for x in exported.splitlines() if x.startswith("exported ") and expired in x]
    assert line.endswith("; dropped"), exported
    archived = s3.list_objects_v2(Bucket=buckets["archive"]).get("Contents", [])
    assert any(expired in o["Key"] for o in archived), archived
    with psycopg.connect(world.database.primary_url) as conn:
        left = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r'")}
    assert expired not in left
    assert _partition(*COMPRESSIBLE) in left


def test_a_cronjob_left_to_its_schedule_runs_by_itself(world: World) -> None:
    _ready(world)
    _apply_full_example(world, daily_schedule="* * * * *")
    cronjob = backup_cronjob_name(NAME, "daily")

    def scheduled_job_done() -> str | None:
        jobs = get_json(world.stack, world.namespace, "jobs")
        for job in (jobs or {}).get("items", []):
            owners = job["metadata"].get("ownerReferences") or []
            # `kubectl create job --from` also names the CronJob as owner; it marks its Jobs.
            manual = "cronjob.kubernetes.io/instantiate" in (
                job["metadata"].get("annotations") or {}
            )
            if not manual and any(o["kind"] == "CronJob" and o["name"] == cronjob for o in owners):
                outcome = job_finished(world.release, job["metadata"]["name"])
                if outcome:
                    return f"{job['metadata']['name']}: {outcome}"
        return None

    done = wait_for(scheduled_job_done, 200, f"a Job of {cronjob} started by its schedule", 3)
    assert done.endswith("Complete"), done
    _apply_full_example(world)


def test_an_image_that_was_not_imported_is_never_pulled_from_outside(world: World) -> None:
    """Nothing leaves this machine: containerd's registry requests go to a loopback proxy
    address where nothing listens, so the pull fails at once, without a name lookup."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "not-imported", "namespace": world.namespace},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "c", "image": "registry.example/not-imported:1",
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }  # fmt: skip
    world.release.kubectl("apply", "-f", "-", input_text=json.dumps(pod))
    try:

        def pull_failure() -> str | None:
            listed = get_json(world.stack, world.namespace, "events", "--field-selector",
                              "involvedObject.name=not-imported,reason=Failed")  # fmt: skip
            messages = [e["message"] for e in (listed or {}).get("items", [])]
            return next((m for m in messages if "registry.example" in m), None)

        message = wait_for(pull_failure, 60, "the failed pull of an image that is not there")
        assert "proxyconnect tcp: dial tcp 127.0.0.1:9" in message, message
    finally:
        world.release.kubectl("delete", "pod", "not-imported", "--wait=false")


def _condition(world: World, kind: str) -> dict[str, str]:
    return conditions(get_json(world.stack, world.namespace, "lokifistorage", NAME)).get(kind, {})


def test_a_failing_job_shows_in_its_parts_condition_with_the_reason(world: World) -> None:
    _ready(world)
    stack = world.stack
    _seed_old_months(world, (2017, 3))
    wrong_key = "not-the-key-" + stack.aws_secret_access_key[::-1]
    create_secret(stack, world.namespace, "lokifi-s3", AWS_ACCESS_KEY_ID=stack.aws_access_key_id,
                  AWS_SECRET_ACCESS_KEY=wrong_key)  # fmt: skip
    try:
        job = "export-wrong-key"
        world.release.kubectl(
            "create", "job", job, f"--from=cronjob/{partitions_cronjob_name(NAME, 'export')}"
        )
        outcome = wait_for(lambda: job_finished(world.release, job), 240, f"job {job}", 2)
        logs = job_logs(world.release, job)
        assert outcome == "Failed", logs
        assert wrong_key not in logs
        failed = wait_for(
            lambda: (
                (c := _condition(world, "PartitionsReady")).get("status") == "False"
                and "partitions-export job failed" in c.get("message", "")
                and c
            ),
            120,
            "PartitionsReady to report the failed export job",
        )
        assert failed["reason"] not in ("", "Reconciled"), failed
        print(f"PartitionsReady=False {failed['reason']}: {failed['message']}")
    finally:
        key_id, key = stack.aws_access_key_id, stack.aws_secret_access_key
        create_secret(
            stack, world.namespace, "lokifi-s3", AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=key
        )
    # The next good run clears it.
    _run_job(world, partitions_cronjob_name(NAME, "export"), "export-again")
    wait_for(
        lambda: _condition(world, "PartitionsReady").get("status") == "True",
        120,
        "PartitionsReady True after a good export run",
    )


def test_helm_upgrade_rolls_the_operator_and_uninstall_keeps_crd_and_resources(
    world: World,
) -> None:
    _ready(world)
    release = world.release
    (before,) = release.pods()
    release.helm("upgrade", "--wait", "--timeout", "180s", logLevel="DEBUG")
    pods = wait_for(
        lambda: [p for p in release.pods() if p["metadata"]["uid"] != before["metadata"]["uid"]
                 and all(c["ready"] for c in p["status"].get("containerStatuses", [{"ready": 0}]))],
        120, "the rolled operator Pod",
    )  # fmt: skip
    env = {e["name"]: e.get("value") for e in pods[0]["spec"]["containers"][0]["env"]}
    assert env["LOKIFI_LOG_LEVEL"] == "DEBUG"

    release.uninstall()
    assert get_json(world.stack, "", "crd", "lokifistorages.storage.lokifi.ai") is not None
    assert get_json(world.stack, world.namespace, "lokifistorage", NAME) is not None
    assert get_json(world.stack, world.namespace, "cronjob", backup_cronjob_name(NAME, "daily"))
    wait_for(lambda: not release.pods() or None, 60, "the operator Pod to go")


@pytest.fixture(autouse=True)
def _print_notes(world: World) -> None:
    print(f"namespace {world.namespace}")
