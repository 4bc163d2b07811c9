"""How a job ends: exceptions that carry the process exit code and the condition reason, and
the record of the last run that the operator reads (`job_run`).

Exit codes are part of the CLI's contract (CronJob alerts and scripts read them):

    0  success
    1  failure: a server unreachable, a tool failed, bad input
    2  usage error (typer's own)
    3  the backup object is corrupt (checksum, compression frame) or a lock timed out (vacuum)
    4  verify restored the backup but the row counts differ from the manifest
    5  the table named does not exist (vacuum)
  143  interrupted by SIGTERM (128 + 15), after cleaning up
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import typer

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.job_runs import record_job_run
from lokifi_storage.domain.job_env import RESOURCE_ENV
from lokifi_storage.domain.redaction import redact, register_secret

__all__ = [
    "BackupCorruptError",
    "JobError",
    "RunNote",
    "TerminatedError",
    "VerifyMismatchError",
    "job_run",
    "sigterm_raises",
]

log = logging.getLogger(__name__)


class JobError(Exception):
    """A job failed; the message is for the admin reading the Job's log."""

    exit_code = 1
    reason = Reason.BACKUP_FAILED

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class BackupCorruptError(JobError):
    exit_code = 3
    reason = Reason.BACKUP_CORRUPT


class VerifyMismatchError(JobError):
    exit_code = 4
    reason = Reason.VERIFY_FAILED


class TerminatedError(BaseException):
    """SIGTERM arrived (a Job deleted, a node drained). A BaseException so that no
    `except Exception` in between swallows it before the cleanup in `finally` blocks runs."""

    exit_code = 128 + signal.SIGTERM


def _raise(signum: int, frame: FrameType | None) -> None:
    raise TerminatedError(f"terminated by signal {signum}")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into TerminatedError in the main thread while the block runs."""
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class RunNote:
    """What the command learnt about its own failure, for the record `job_run` writes."""

    reason: str = ""
    message: str = ""

    def fail(self, reason: str, message: str) -> None:
        if not self.reason:
            self.reason, self.message = reason, message


@contextmanager
def job_run(job: str, url: str | None) -> Iterator[RunNote]:
    """Record how the block ended (success, or the reason and message of the failure) in the
    database at `url`, for the operator to read (domain/job_runs.py).

    Only a CronJob's run records: it names its resource in LOKIFI_RESOURCE. The record is
    best effort: a database that cannot be reached cannot hold it, and the job's exit code
    still says what happened.
    """
    note = RunNote()
    resource = os.environ.get(RESOURCE_ENV)
    ok = False
    try:
        yield note
        ok = True
    except typer.Exit as done:
        ok = done.exit_code == 0
        if not ok:
            note.fail(Reason.JOB_FAILED, f"exited with code {done.exit_code}")
        raise
    except TerminatedError:
        note.fail(Reason.JOB_FAILED, "terminated (SIGTERM: deleted, or past its deadline)")
        raise
    except BaseException as error:
        note.fail(getattr(error, "reason", Reason.JOB_FAILED), type(error).__name__)
        raise
    finally:
        if resource and url:
            register_secret(url)
            try:
                record_job_run(
                    url,
                    resource,
                    job,
                    ok=ok,
                    reason="" if ok else note.reason,
                    message="" if ok else redact(note.message),
                )
            except ClientError as error:
                log.warning("%s", error.message)
