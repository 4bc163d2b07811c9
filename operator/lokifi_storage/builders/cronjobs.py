"""CronJobs the operator owns: one per backup schedule and one for VACUUM.

Heavy work runs in these Jobs, never in the operator (docs/architecture.md). Their command is this
project's own CLI, so what a CronJob runs is what an admin can run by hand.

Every CronJob is built the same way:
- `concurrencyPolicy: Forbid`: two backups of one schedule never overlap; a late run is skipped
  rather than piled up.
- history limits, so finished Jobs and their pods do not accumulate.
- `activeDeadlineSeconds` (12 hours by default): a Job that hangs is ended instead of holding
  its database locks and connections, and blocking every later run, for ever.
- a restricted security context (the "restricted" Pod Security Standard): non-root, read-only
  root filesystem (an emptyDir at /tmp for scratch), no privilege escalation, every capability
  dropped, seccomp RuntimeDefault; no service-account token, the jobs never call the API.
- resource requests and limits.
- credentials only through `env.valueFrom.secretKeyRef`: a password never appears in the
  CronJob's args, its env values, or anything `kubectl get -o yaml` shows.
- `timeZone: Etc/UTC`, so a schedule means the same on every cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from lokifi_storage.api.spec import (
    DEFAULT_PARTITION_JOBS_SCHEDULE,
    BackupScheduleSpec,
    LokifiStorageSpec,
    SecretKeyRef,
)
from lokifi_storage.builders.labels import Owner, labels_for, owner_reference
from lokifi_storage.builders.names import (
    backup_cronjob_name,
    partitions_cronjob_name,
    vacuum_cronjob_name,
)
from lokifi_storage.domain.job_env import (
    AWS_ACCESS_KEY_ID_ENV,
    AWS_REGION_ENV,
    AWS_SECRET_ACCESS_KEY_ENV,
    PRIMARY_URL_ENV,
    RESOURCE_ENV,
    TABLES_JSON_ENV,
    VERIFY_URL_ENV,
)
from lokifi_storage.domain.job_runs import resource_key
from lokifi_storage.domain.schedule_diff import with_desired_hash

__all__ = [
    "BACKUP_COMPONENT",
    "VACUUM_COMPONENT",
    "JobCommand",
    "JobSettings",
    "backup_command",
    "build_cronjob",
    "desired_cronjobs",
    "partition_commands",
    "vacuum_command",
]

BACKUP_COMPONENT: Final = "backup"
VACUUM_COMPONENT: Final = "vacuum"
PARTITIONS_COMPONENT: Final = "partitions"

DEFAULT_IMAGE: Final = "ghcr.io/lokifi/lokifi-storage-operator:latest"
CLI: Final = "lokifi-storage"

# Keys of the object-storage credentials Secret (`objectStorage.credentialsSecretRef`, docs/api.md).
S3_ACCESS_KEY_ID_KEY: Final = "AWS_ACCESS_KEY_ID"
S3_SECRET_ACCESS_KEY_KEY: Final = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a name


@dataclass(frozen=True)
class JobSettings:
    """Operator-wide settings of the job pods (from the operator's flags and environment)."""

    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    requests: Mapping[str, str] = field(default_factory=lambda: {"cpu": "100m", "memory": "256Mi"})
    limits: Mapping[str, str] = field(default_factory=lambda: {"cpu": "2", "memory": "1Gi"})
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 3
    backoff_limit: int = 2
    starting_deadline_seconds: int = 3600
    # A Job still running after this is stopped by Kubernetes (SIGTERM, then the pod is
    # killed): a hung pg_dump or export would otherwise hold its locks and connections
    # forever, and `concurrencyPolicy: Forbid` would skip every later run behind it.
    active_deadline_seconds: int = 12 * 3600
    run_as_user: int = 65532


@dataclass(frozen=True)
class JobCommand:
    """What one CronJob runs: CLI arguments, plain env values, and env values from Secrets."""

    component: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[tuple[str, SecretKeyRef], ...] = ()


def _storage_env(
    spec: LokifiStorageSpec,
) -> tuple[list[tuple[str, str]], list[tuple[str, SecretKeyRef]]]:
    storage = spec.objectStorage
    if storage is None:
        return [], []
    plain = [(AWS_REGION_ENV, storage.region)]
    secret = storage.credentialsSecretRef.name
    refs = [
        (AWS_ACCESS_KEY_ID_ENV, SecretKeyRef(name=secret, key=S3_ACCESS_KEY_ID_KEY)),
        (AWS_SECRET_ACCESS_KEY_ENV, SecretKeyRef(name=secret, key=S3_SECRET_ACCESS_KEY_KEY)),
    ]
    return plain, refs


def _database_env(spec: LokifiStorageSpec) -> list[tuple[str, SecretKeyRef]]:
    if spec.postgres is None:
        return []
    return [(PRIMARY_URL_ENV, spec.postgres.primary.secretRef)]


def backup_command(
    spec: LokifiStorageSpec, schedule: BackupScheduleSpec, resource: str, namespace: str = ""
) -> JobCommand:
    """`lokifi-storage backup create --schedule NAME ...`; everything but credentials as args.

    `--namespace` and `--name` put the backups in this resource's own folder (the job adds
    the source database's identity itself).
    """
    backups = spec.backups
    if backups is None:
        raise ValueError("backup_command needs spec.backups")
    args = [
        "backup",
        "create",
        "--schedule",
        schedule.name,
        "--name",
        resource,
        "--namespace",
        namespace,
        "--bucket",
        backups.bucket,
        "--prefix",
        backups.prefix,
        "--compression",
        backups.compression,
        "--keep",
        str(schedule.keep),
        "--storage-class",
        schedule.storageClass,
    ]
    if spec.objectStorage is not None:
        args += ["--region", spec.objectStorage.region]
        if spec.objectStorage.endpoint:
            args += ["--endpoint", spec.objectStorage.endpoint]
    verify_env: list[tuple[str, SecretKeyRef]] = []
    if backups.verifyRestore:
        args.append("--verify")
        if backups.verifyTarget is not None:
            args += ["--verify-target-env", VERIFY_URL_ENV]
            verify_env.append((VERIFY_URL_ENV, backups.verifyTarget.secretRef))
    plain, s3_refs = _storage_env(spec)
    return JobCommand(
        component=BACKUP_COMPONENT,
        args=tuple(args),
        env=tuple(plain),
        secret_env=tuple(_database_env(spec) + verify_env + s3_refs),
    )


def vacuum_command(spec: LokifiStorageSpec) -> JobCommand:
    """`lokifi-storage vacuum --tables T ...`."""
    vacuum = spec.maintenance.vacuum if spec.maintenance is not None else None
    if vacuum is None:
        raise ValueError("vacuum_command needs spec.maintenance.vacuum")
    args = ["vacuum"]
    for table in vacuum.tables:
        args += ["--tables", table]
    args.append("--analyze" if vacuum.analyze else "--no-analyze")
    return JobCommand(
        component=VACUUM_COMPONENT,
        args=tuple(args),
        secret_env=tuple(_database_env(spec)),
    )


def partition_commands(spec: LokifiStorageSpec) -> list[tuple[str, JobCommand]]:
    """`lokifi-storage partitions compress|export`, each only when some table asks for it.

    The tables travel as LOKIFI_TABLES_JSON (no credentials in them); the primary's URL and
    the S3 keys come from Secrets.
    """
    if spec.postgres is None:
        return []
    tables = spec.postgres.tables
    compress = [t for t in tables if t.archive is not None and t.archive.compressAfterDays]
    export = [t for t in tables if t.retention is not None]
    commands: list[tuple[str, JobCommand]] = []
    for work, chosen in (("compress", compress), ("export", export)):
        if not chosen:
            continue
        tables_json = json.dumps(
            [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in chosen],
            sort_keys=True,
            separators=(",", ":"),
        )
        args = ["partitions", work]
        plain: list[tuple[str, str]] = [(TABLES_JSON_ENV, tables_json)]
        secret_env = _database_env(spec)
        if work == "export":
            s3_plain, s3_refs = _storage_env(spec)
            plain += s3_plain
            secret_env += s3_refs
            if spec.objectStorage is not None:
                args += ["--region", spec.objectStorage.region]
                if spec.objectStorage.endpoint:
                    args += ["--endpoint", spec.objectStorage.endpoint]
        commands.append(
            (
                work,
                JobCommand(
                    component=PARTITIONS_COMPONENT,
                    args=tuple(args),
                    env=tuple(plain),
                    secret_env=tuple(secret_env),
                ),
            )
        )
    return commands


def _env(command: JobCommand) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
        for name, ref in command.secret_env
    ]
    env += [{"name": name, "value": value} for name, value in command.env]
    return env


def _container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_cronjob(
    owner: Owner,
    name: str,
    schedule: str,
    command: JobCommand,
    settings: JobSettings,
    schedule_label: str | None = None,
) -> dict[str, Any]:
    """A complete batch/v1 CronJob running `lokifi-storage <args>` on `schedule` (UTC), carrying
    the hash of itself that domain/schedule_diff.py compares."""
    labels = labels_for(owner, command.component, schedule_label)
    container: dict[str, Any] = {
        "name": command.component,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [CLI],
        "args": list(command.args),
        # Which resource the run is for: the job records its outcome under it, and the
        # operator reads it back (domain/job_runs.py).
        "env": [
            *_env(command),
            {"name": RESOURCE_ENV, "value": resource_key(owner.namespace, owner.name)},
        ],
        "resources": {"requests": dict(settings.requests), "limits": dict(settings.limits)},
        "securityContext": _container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }
    return with_desired_hash(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {
                "name": name,
                "namespace": owner.namespace,
                "labels": labels,
                "ownerReferences": [owner_reference(owner)],
            },
            "spec": {
                "schedule": schedule,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": settings.starting_deadline_seconds,
                "successfulJobsHistoryLimit": settings.successful_jobs_history_limit,
                "failedJobsHistoryLimit": settings.failed_jobs_history_limit,
                "jobTemplate": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "backoffLimit": settings.backoff_limit,
                        "activeDeadlineSeconds": settings.active_deadline_seconds,
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "restartPolicy": "Never",
                                "automountServiceAccountToken": False,
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "runAsUser": settings.run_as_user,
                                    "runAsGroup": settings.run_as_user,
                                    "fsGroup": settings.run_as_user,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "containers": [container],
                                "volumes": [{"name": "tmp", "emptyDir": {}}],
                            },
                        },
                    },
                },
            },
        }
    )


def desired_cronjobs(
    owner: Owner, spec: LokifiStorageSpec, settings: JobSettings
) -> list[dict[str, Any]]:
    """Every CronJob the spec asks for, in a stable order (backups by schedule, vacuum, then the
    partition work: compress, export).

    Backups and vacuum need the primary's URL, so without `spec.postgres` there is nothing to run.
    """
    jobs: list[dict[str, Any]] = []
    if spec.postgres is None:
        return jobs
    if spec.backups is not None:
        for schedule in spec.backups.schedules:
            jobs.append(
                build_cronjob(
                    owner,
                    backup_cronjob_name(owner.name, schedule.name),
                    schedule.schedule,
                    backup_command(spec, schedule, owner.name, owner.namespace),
                    settings,
                    schedule_label=schedule.name,
                )
            )
    if spec.maintenance is not None and spec.maintenance.vacuum is not None:
        jobs.append(
            build_cronjob(
                owner,
                vacuum_cronjob_name(owner.name),
                spec.maintenance.vacuum.schedule,
                vacuum_command(spec),
                settings,
            )
        )
    maintenance = spec.maintenance.partitions if spec.maintenance else None
    partition_schedule = maintenance.schedule if maintenance else DEFAULT_PARTITION_JOBS_SCHEDULE
    for work, command in partition_commands(spec):
        jobs.append(
            build_cronjob(
                owner,
                partitions_cronjob_name(owner.name, work),
                partition_schedule,
                command,
                settings,
                schedule_label=work,
            )
        )
    return jobs


def referenced_names(jobs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names of `jobs`, for messages."""
    return [str(job["metadata"]["name"]) for job in jobs]
