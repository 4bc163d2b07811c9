"""How a job ends: exceptions that carry the process exit code and the condition reason.

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

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from lokifi_storage.api.conditions import Reason

__all__ = [
    "BackupCorruptError",
    "JobError",
    "TerminatedError",
    "VerifyMismatchError",
    "sigterm_raises",
]


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
