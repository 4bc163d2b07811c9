"""Row progress of a migration: a bar with rows/s and ETA on a terminal, plain lines in a Job.

Counts rows, not bytes, which is what jobs/progress.py's byte bar shows; it reuses that
module's Reporter for the terminal/Job decision and the timestamped lines.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lokifi_storage.jobs.progress import Reporter

__all__ = ["RowProgress"]


class RowProgress:
    """`advance(rows)` as chunks commit; `table(name)` when the next table starts."""

    def __init__(self, reporter: Reporter, total: int, done: int = 0) -> None:
        self.reporter = reporter
        self.total = total
        self.done = done
        self.start_done = done
        self.name = ""
        self.started = time.monotonic()
        self.last = self.started
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RowProgress:
        if self.reporter.tty:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("rows {task.fields[rate]}/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.reporter.console,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "migrate", total=self.total, completed=self.done, rate="-"
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(kind, error, trace)
        if kind is None:
            self.reporter.info(f"loaded: {self._line(time.monotonic())}")

    def rate(self, now: float) -> float:
        return (self.done - self.start_done) / max(now - self.started, 1e-6)

    def _line(self, now: float) -> str:
        rate = self.rate(now)
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = (self.total - self.done) / rate if rate > 0 else 0
        return (
            f"{self.done}/{self.total} rows{share}, {rate:,.0f} rows/s, "
            f"ETA {eta:.0f}s, {now - self.started:.1f}s elapsed"
        )

    def table(self, name: str) -> None:
        self.name = name
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=name)
        else:
            self.reporter.info(f"loading {name}")

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=rows, rate=f"{self.rate(now):,.0f}")
            return
        if now - self.last >= self.reporter.interval:
            self.last = now
            self.reporter.info(f"{self.name}: {self._line(now)}")
