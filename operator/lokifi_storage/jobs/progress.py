"""Progress for long jobs: a rich progress bar in a terminal, plain timestamped lines in a Job.

Kubernetes keeps a Job's stdout as its log; carriage-return animations turn that into noise, so
when stdout is not a TTY progress is a line every `interval` seconds and one at the end.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from lokifi_storage.api.timestamps import rfc3339

__all__ = ["Reporter", "Task", "human_bytes"]


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class Task(Protocol):
    def advance(self, amount: int) -> None: ...


class _PlainTask:
    def __init__(self, reporter: Reporter, description: str, total: int | None) -> None:
        self._reporter = reporter
        self._description = description
        self._total = total
        self._done = 0
        self._start = time.monotonic()
        self._last = self._start
        self._lock = threading.Lock()

    def advance(self, amount: int) -> None:
        with self._lock:
            self._done += amount
            now = time.monotonic()
            if now - self._last < self._reporter.interval:
                return
            self._last = now
        self._reporter.info(f"{self._description}: {self._summary(now)}")

    def _summary(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-6)
        total = f" of {human_bytes(self._total)}" if self._total else ""
        return f"{human_bytes(self._done)}{total} ({human_bytes(self._done / elapsed)}/s)"

    def finish(self) -> None:
        now = time.monotonic()
        self._reporter.info(
            f"{self._description}: done, {self._summary(now)} in {now - self._start:.1f}s"
        )


class _RichTask:
    def __init__(self, progress: Progress, task_id: int) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, amount: int) -> None:
        self._progress.advance(self._id, amount)  # type: ignore[arg-type]


class Reporter:
    """Where a job says what it does. `tty` None means: look at the stream."""

    def __init__(
        self, *, stream: IO[str] | None = None, tty: bool | None = None, interval: float = 10.0
    ) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        # Not a terminal: a wide table rather than keys cut at 80 columns in a Job log.
        width = None if self.tty else 200
        self._console = Console(
            file=self.stream, force_terminal=self.tty, highlight=False, width=width
        )

    @property
    def console(self) -> Console:
        return self._console

    def info(self, message: str) -> None:
        if self.tty:
            self._console.print(message, markup=False)
        else:
            stamp = rfc3339(datetime.now(UTC))
            print(f"{stamp} {message}", file=self.stream, flush=True)

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        if not self.tty:
            plain = _PlainTask(self, description, total)
            yield plain
            plain.finish()
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self._console, transient=False) as progress:
            task_id = progress.add_task(description, total=total)
            yield _RichTask(progress, int(task_id))
