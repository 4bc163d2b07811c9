"""The kill campaign: SIGKILL at random points of the work that moves rows, then resume.

A database holds years of chat messages, all waiting in the DEFAULT partition, under the seed's
table spec (monthly partitions, user-range sub-partitions, archive after 365 days, compress
after 730, export to S3 and drop after 2555). Then, in turn, each of these is started and
killed with SIGKILL at a random moment, a number of times, and finally run to the end:
- the operator, during its first reconciles (rows moved out of DEFAULT, months archived);
- `partitions compress` and `partitions export`, run as their CronJobs run them (the command
  and environment builders/cronjobs.py gives the CronJob, the Secrets' values filled in);
- `backup create` for the daily schedule.

After every kill and every resume: the rows, read from the live table, the archive (the `_rows`
view, packed months included) and the exported objects read back from S3, are exactly the
starting rows (no id lost, none twice, and an order-independent digest of every row equal);
no invalid index and no stray table is left; at the end, once the clean-ups of a run a day later
have run, no unfinished upload, scratch database or object without its manifest. After the
operator's last kill it is Ready again within two resync intervals.

`make test` runs a slice (LOKIFI_KILLS=6 over LOKIFI_KILL_ROWS=30000 rows); `make faults` runs
at least 100 kills over 1,000,000 rows. LOKIFI_KILL_SEED makes a run reproducible.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from e2e_operator import (
    APP_SCHEMA,
    OperatorFactory,
    conditions,
    create_secret,
    get_json,
    kubectl,
    wait_for,
)
from row_digest import Rows, add_exported_rows, database_rows, live_tables

from lokifi_storage.api import conditions as types
from lokifi_storage.api.spec import LokifiStorageSpec, ObjectStorageSpec
from lokifi_storage.builders.cronjobs import JobCommand, backup_command, partition_commands
from lokifi_storage.clients.backup_store import BackupStore
from lokifi_storage.clients.postgres.backup import scratch_databases, server_identity
from lokifi_storage.domain.backup_catalog import backup_folder, source_id
from lokifi_storage.domain.backup_retention import DEFAULT_GRACE
from lokifi_storage.jobs.backup_create import BackupTarget, prune_schedule
from lokifi_storage.jobs.backup_verify import SCRATCH_PREFIX, remove_leftover_scratch
from lokifi_storage.jobs.progress import Reporter
from stackfixtures import PgDatabase, StackEnv, empty_and_delete_bucket, unique_name

KILLS = int(os.environ.get("LOKIFI_KILLS", "6"))
ROWS = int(os.environ.get("LOKIFI_KILL_ROWS", "30000"))
SEED = int(os.environ.get("LOKIFI_KILL_SEED", "1"))
YEARS = 8  # older than retention's 2555 days at the far end, so export has work
RESYNC_SECONDS = 10.0
CLI = Path(sys.executable).with_name("lokifi-storage")

RESOURCE = """
apiVersion: storage.lokifi.ai/v1alpha1
kind: LokifiStorage
metadata: {name: kills, namespace: NAMESPACE}
spec:
  postgres:
    primary: {secretRef: {name: lokifi-db, key: url}}
    tables:
      - name: ai_messages
        partitionBy: {column: created_at, interval: month}
        premake: 3
        subpartitionBy: {column: user_id, rangeSize: 1000000, count: 2}
        indexes:
          - name: idx_ai_messages_user_thread_time
            columns: [user_id, thread_id, "created_at DESC"]
        archive: {afterDays: 365, schema: archive, compressAfterDays: 730}
        retention:
          dropAfterDays: 2555
          exportTo: {bucket: ARCHIVE_BUCKET, storageClass: DEEP_ARCHIVE}
  objectStorage:
    endpoint: S3_ENDPOINT
    region: REGION
    credentialsSecretRef: {name: lokifi-s3}
  backups:
    bucket: BACKUP_BUCKET
    schedules: [{name: daily, schedule: "0 2 * * *", keep: 3}]
"""


@dataclass
class Campaign:
    stack: StackEnv
    namespace: str
    database: PgDatabase
    buckets: dict[str, str]
    resource: dict[str, Any]
    spec: LokifiStorageSpec
    secrets: dict[str, dict[str, str]]
    rng: random.Random
    start: Rows = field(default_factory=Rows)
    kills: int = 0
    lost: int = 0
    doubled: int = 0
    worst_ready_resyncs: float = 0.0
    figures: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    # --- the rows, wherever they are ----------------------------------------------------------

    def rows_now(self) -> Rows:
        live = live_tables(self.database.primary_url)
        rows = database_rows(self.database.primary_url)
        add_exported_rows(self.stack.s3_client(), self.buckets["archive"], rows, still_live=live)
        return rows

    def check(self, after: str, *, debris: bool = True) -> None:
        """Rows after every kill; debris (a killed index build, a half-made table) only once the
        work was resumed and finished, since a kill leaves it until the next run cleans up."""
        now = self.rows_now()
        lost, doubled, same_rows = now.compare(self.start)
        self.lost += lost
        self.doubled += doubled
        if lost or doubled or not same_rows:
            same = "equal" if now.digest == self.start.digest else "DIFFERS"
            self.failures.append(
                f"after {after}: {now.count} rows (expected {self.start.count}), lost {lost}, "
                f"twice {doubled}, digest {same}"
            )
        if debris:
            self.check_debris(after)

    def check_debris(self, after: str) -> None:
        with psycopg.connect(self.database.primary_url, autocommit=True) as conn:
            invalid = conn.execute(
                "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE NOT i.indisvalid"
            ).fetchall()
            # A table is in place when it is part of a partition tree or one of the app's own.
            stray = conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'archive')"
                " AND NOT c.relispartition"
                " AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)"
                " AND c.relname NOT IN ('ai_messages', 'ai_threads', 'users')"
            ).fetchall()
        if invalid:
            self.failures.append(f"after {after}: invalid index(es) {[r[0] for r in invalid]}")
        if stray:
            self.failures.append(f"after {after}: stray table(s) {[r[0] for r in stray]}")

    def check_leftovers(self) -> None:
        """What a killed run may leave behind on purpose (an abandoned multipart upload, a
        manifest whose dump never completed, a verify's scratch database) is removed by the
        next run once it is older than its grace, since until then it may be another run's
        work in progress. So: run those clean-ups as a run a day later would, then nothing of
        it may be left, and every export and backup object must stand with its manifest."""
        url = self.database.primary_url
        later = datetime.now(UTC) + DEFAULT_GRACE + timedelta(hours=1)
        reporter = Reporter(stream=io.StringIO())
        s3 = self.stack.s3_client()
        assert self.spec.backups is not None
        schedule = self.spec.backups.schedules[0]
        target = BackupTarget(
            store=BackupStore(s3, self.buckets["backups"]),
            prefix=self.spec.backups.prefix,
            name=backup_folder(self.namespace, "kills", source_id(*server_identity(url))),
        )
        prune_schedule(target, schedule.name, schedule.keep, later, reporter)
        remove_leftover_scratch(url, reporter, now=later)
        left = scratch_databases(url, SCRATCH_PREFIX)
        if left:
            self.failures.append(f"scratch databases left: {left}")
        for role, bucket in self.buckets.items():
            uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            if uploads:
                self.failures.append(
                    f"{role}: unfinished uploads left {[u['Key'] for u in uploads]}"
                )
            keys = {
                obj["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for obj in page.get("Contents", [])
            }
            data = {k for k in keys if k.endswith(".csv.zst") or ".dump" in k}
            manifests = {k for k in keys if k.endswith(".manifest.json")}
            stem = {k: k.removesuffix(".csv.zst").split(".dump")[0] for k in data}
            alone = sorted(k for k in data if f"{stem[k]}.manifest.json" not in manifests)
            orphans = sorted(
                m for m in manifests if m.removesuffix(".manifest.json") not in stem.values()
            )
            if alone or orphans:
                self.failures.append(
                    f"{role}: objects without their manifest {alone}, manifests alone {orphans}"
                )

    # --- the work, killed and resumed -----------------------------------------------------------

    def job_env(self, command: JobCommand) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOKIFI_"))}
        env.update(dict(command.env))
        for name, ref in command.secret_env:
            env[name] = self.secrets[ref.name][ref.key]
        return env

    def run_killed(self, label: str, argv: list[str], env: dict[str, str], kills: int) -> None:
        """`kills` times: start, SIGKILL at a random moment, check; then run to the end."""
        durations: list[float] = []
        for _ in range(kills):
            delay = self.rng.uniform(0.05, max(0.2, (durations[-1] if durations else 2.0)))
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=delay)
                durations.append(delay)  # finished before the kill: it had little to do
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                self.kills += 1
            self.check(f"{label} killed at {delay:.2f}s", debris=False)
        started = time.monotonic()
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
        took = time.monotonic() - started
        if result.returncode != 0:
            self.failures.append(
                f"{label} after the kills: exit {result.returncode}: {result.stderr[-1500:]}"
            )
        self.check(f"{label} run to the end")
        self.figures.append(f"{label:18s} whole run after kills {took:6.1f}s")

    def kill_operator(self, start_operator: OperatorFactory, kills: int) -> None:
        for _ in range(kills):
            operator = start_operator(self.namespace, resync_seconds=RESYNC_SECONDS)
            delay = self.rng.uniform(0.1, 6.0)
            time.sleep(delay)
            assert operator.proc is not None
            if operator.proc.poll() is None:
                os.killpg(operator.proc.pid, signal.SIGKILL)
                operator.proc.wait()
                self.kills += 1
            self.check(f"operator killed at {delay:.2f}s", debris=False)
        # The work left after the kills (rows still in DEFAULT, months to archive) takes as many
        # passes as it takes: reported. A kill once the work is done must cost at most two
        # resyncs: asserted.
        self.figures.append(
            f"{'operator':18s} Ready {self.ready_after_restart(start_operator):.1f} resyncs after"
            " its restart (work left after the kills)"
        )
        for _ in range(2):
            operator = start_operator(self.namespace, resync_seconds=RESYNC_SECONDS)
            time.sleep(self.rng.uniform(0.5, RESYNC_SECONDS * 2))
            assert operator.proc is not None
            os.killpg(operator.proc.pid, signal.SIGKILL)
            operator.proc.wait()
            self.kills += 1
            resyncs = self.ready_after_restart(start_operator)
            self.worst_ready_resyncs = max(self.worst_ready_resyncs, resyncs)
        self.figures.append(
            f"{'operator':18s} Ready {self.worst_ready_resyncs:.1f} resyncs (worst) after a kill"
            " of a settled operator"
        )
        self.check("the operator's reconciles")

    def ready_after_restart(self, start_operator: OperatorFactory) -> float:
        """Start an operator; resync intervals until the resource is Ready (it is stopped)."""
        operator = start_operator(self.namespace, resync_seconds=RESYNC_SECONDS)
        started = time.monotonic()  # the process answers its health endpoint: Kopf is starting

        def ready() -> bool:
            obj = get_json(self.stack, self.namespace, "lokifistorage", "kills")
            generation = (obj or {}).get("metadata", {}).get("generation")
            status = (obj or {}).get("status", {})
            return (
                status.get("observedGeneration") == generation
                and conditions(obj).get(types.READY, {}).get("status") == "True"
                and _reconciled_once(operator.metrics())
            )

        wait_for(ready, 900, "Ready after the operator's restart", interval=0.5)
        took = time.monotonic() - started
        passes = [
            line
            for line in operator.metrics().splitlines()
            if line.startswith("lokifi_storage_reconcile_duration_seconds_sum")
        ]
        self.figures.append(f"{'':18s} restart to Ready {took:.1f}s; {'; '.join(passes)}")
        operator.stop()
        return took / RESYNC_SECONDS


def _reconciled_once(metrics: str) -> bool:
    """The restarted operator finished a partitions pass of its own (the status may still say
    Ready from before the kill, so the condition alone proves nothing)."""
    return any(
        line.startswith("lokifi_storage_reconcile_duration_seconds_count")
        and 'part="partitions"' in line
        and float(line.rsplit(" ", 1)[1]) >= 1
        for line in metrics.splitlines()
    )


def _fill(database: PgDatabase, rows: int) -> None:
    """`rows` messages over YEARS years, all in the DEFAULT partition (no month exists yet)."""
    with psycopg.connect(database.primary_url, autocommit=True) as conn:
        conn.execute(APP_SCHEMA.read_bytes())
        conn.execute("CREATE TABLE ai_messages_default PARTITION OF ai_messages DEFAULT")
        conn.execute(
            "INSERT INTO ai_messages (user_id, thread_id, role, content, created_at)"
            " SELECT (g::bigint * 7919) %% 2100000, g %% 5000, CASE WHEN g %% 2 = 0 THEN 'user'"
            " ELSE 'assistant' END, 'message ' || g || ' ' || md5(g::text),"
            " now() - make_interval(secs => (g::float8 / %s) * %s * 365 * 86400)"
            " FROM generate_series(1, %s) g",
            (rows, YEARS, rows),
        )


@pytest.fixture
def campaign(
    kube_stack: StackEnv,
    crd: str,
    k8s_namespace: str,
    pg_database: PgDatabase,
    request: pytest.FixtureRequest,
) -> Iterator[Campaign]:
    s3 = kube_stack.s3_client()
    buckets = {
        role: unique_name(f"{role}-{request.node.name}", 63, sep="-")
        for role in ("archive", "backups")
    }
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    text = (
        RESOURCE.replace("NAMESPACE", k8s_namespace)
        .replace("ARCHIVE_BUCKET", buckets["archive"])
        .replace("BACKUP_BUCKET", buckets["backups"])
        .replace("S3_ENDPOINT", kube_stack.s3_endpoint)
        .replace("REGION", kube_stack.aws_region)
    )
    resource: dict[str, Any] = yaml.safe_load(text)
    if "allowPlainHttp" in ObjectStorageSpec.model_fields:
        resource["spec"]["objectStorage"]["allowPlainHttp"] = True  # the stack's S3 is http
    secrets = {
        "lokifi-db": {"url": pg_database.primary_url},
        "lokifi-s3": {
            "AWS_ACCESS_KEY_ID": kube_stack.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": kube_stack.aws_secret_access_key,
        },
    }
    for name, data in secrets.items():
        create_secret(kube_stack, k8s_namespace, name, **data)
    _fill(pg_database, ROWS)
    run = Campaign(
        kube_stack,
        k8s_namespace,
        pg_database,
        buckets,
        resource,
        LokifiStorageSpec.model_validate(resource["spec"]),
        secrets,
        random.Random(SEED),
    )
    run.start = run.rows_now()
    try:
        yield run
    finally:
        for bucket in buckets.values():
            empty_and_delete_bucket(kube_stack, bucket)


@pytest.mark.timeout(int(os.environ.get("LOKIFI_KILL_TIMEOUT", "1800")))
def test_kills_at_random_points_lose_and_double_no_row(
    campaign: Campaign, start_operator: OperatorFactory
) -> None:
    stack = campaign.stack
    assert campaign.start.count == ROWS
    kubectl(stack, "apply", "-f", "-", input_text=yaml.safe_dump(campaign.resource))
    share = max(1, KILLS // 4)

    campaign.kill_operator(start_operator, KILLS - 3 * share)
    jobs = dict(partition_commands(campaign.spec))
    for work in ("compress", "export"):
        command = jobs[work]
        campaign.run_killed(
            f"partitions {work}", [str(CLI), *command.args], campaign.job_env(command), share
        )
    assert campaign.spec.backups is not None
    backup = backup_command(
        campaign.spec, campaign.spec.backups.schedules[0], "kills", campaign.namespace
    )
    campaign.run_killed("backup create", [str(CLI), *backup.args], campaign.job_env(backup), share)
    campaign.check_leftovers()

    print(
        f"\nkill campaign: seed {SEED}, {ROWS} rows over {YEARS} years, {campaign.kills} kills;"
        f" rows lost {campaign.lost}, rows twice {campaign.doubled},"
        f" worst resyncs to Ready {campaign.worst_ready_resyncs:.1f}"
    )
    print("\n".join(campaign.figures))
    assert campaign.kills >= KILLS // 2, f"only {campaign.kills} kills landed during work"
    assert campaign.worst_ready_resyncs <= 2, campaign.figures
    assert not campaign.failures, "\n".join(campaign.failures)
