"""How the CronJobs' last runs ended, and what that does to the parts' conditions.

The local control plane of the tests has no kubelet, and a real cluster keeps only a few
finished Jobs: the operator cannot rely on reading Job objects to learn that a backup or an
export failed. So each job records its own last outcome in the database it works on (table
`lokifi_storage.job_runs`, clients/postgres/job_runs.py), keyed by the resource
(`namespace/name`) and the job, and the operator reads it on every reconcile: a failed last run
makes the part's condition False with the job's own reason and message, and the next good run
makes it True again. A part that is already False for a reason of its own keeps that reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import Condition

__all__ = [
    "BACKUP_JOB_PREFIX",
    "COMPRESS_JOB",
    "EXPORT_JOB",
    "VACUUM_JOB",
    "JobRun",
    "condition_of_job",
    "overlay_job_runs",
    "resource_key",
]

COMPRESS_JOB: Final = "partitions-compress"
EXPORT_JOB: Final = "partitions-export"
VACUUM_JOB: Final = "vacuum"
BACKUP_JOB_PREFIX: Final = "backup/"


def resource_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class JobRun:
    """The last run of one job for one resource."""

    job: str
    ok: bool
    reason: str
    message: str
    finished_at: dt.datetime


def condition_of_job(job: str) -> str | None:
    """The part condition a job's outcome belongs to."""
    if job in (COMPRESS_JOB, EXPORT_JOB):
        return types.PARTITIONS_READY
    if job.startswith(BACKUP_JOB_PREFIX):
        return types.BACKUPS_READY
    if job == VACUUM_JOB:
        return types.POSTGRES_READY
    return None


def _failure(condition: Condition, failed: Sequence[JobRun]) -> Condition:
    first = failed[0]
    text = "; ".join(
        f"the last {run.job} job failed at {run.finished_at.astimezone(dt.UTC):%Y-%m-%d %H:%M}Z: "
        f"{run.message}"
        for run in failed
    )
    return condition.model_copy(
        update={"status": "False", "reason": first.reason or Reason.JOB_FAILED, "message": text}
    )


def overlay_job_runs(condition: Condition, runs: Iterable[JobRun]) -> Condition:
    """`condition`, made False by the failed last runs of the jobs that belong to it."""
    if condition.status != "True":
        return condition
    failed = sorted(
        (r for r in runs if not r.ok and condition_of_job(r.job) == condition.type),
        key=lambda r: r.job,
    )
    return _failure(condition, failed) if failed else condition
