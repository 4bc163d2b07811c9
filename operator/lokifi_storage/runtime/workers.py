"""The queue of changes and the pool of workers that run them, changes ahead of resyncs.

runtime/schedule.py keeps when each resource is due; this module turns that and the queued
changes into jobs on `workers` threads, one at a time per resource; runtime/controller.py feeds
both from what Kopf tells. The split follows the three questions: when is a resource due, what
runs next, and what made it due.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.domain.requeue import Outcome
from lokifi_storage.reconcile.resource import ResourceReconciler
from lokifi_storage.reconcile.results import ReconcileResult
from lokifi_storage.runtime.schedule import ControllerConfig, Entry, Schedule

__all__ = ["Workers", "log_crash"]

log = logging.getLogger(__name__)


@dataclass
class _Change:
    entry: Entry
    done: asyncio.Future[ReconcileResult | BaseException] | None = None
    kind: str = "change"  # or "cleanup" (sharded mode: the finalizer of deletionPolicy Delete)


def log_crash(what: str, error: BaseException) -> None:
    """Log an unexpected exception by its type and frames, never its text: the text of an
    unknown exception could quote a connection string."""
    log.error(
        "%s crashed with %s\n%s",
        what,
        type(error).__name__,
        "".join(traceback.format_tb(error.__traceback__)),
    )


class Workers(Schedule):
    """The queue of changes and the workers; Controller adds what feeds them."""

    def __init__(
        self,
        reconciler: ResourceReconciler,
        config: ControllerConfig | None = None,
        *,
        rng: random.Random | None = None,
    ):
        super().__init__(reconciler, config, rng=rng)
        self._changes: collections.deque[_Change] = collections.deque()
        self.changes_from_events = False  # sharded mode: no Kopf change handlers
        self.on_finished: Callable[[Entry, ReconcileResult | None], None] | None = None
        self.finalize: Callable[[Entry], None] | None = None  # sharded mode: the cleanup job
        self.needs_cleanup: Callable[[Entry], bool] = lambda entry: False
        self._queued: set[tuple[str, str]] = set()  # (uid, kind) of queued jobs without waiter

    # --- changes -----------------------------------------------------------------------------

    def enqueue_change(
        self,
        entry: Entry,
        done: asyncio.Future[ReconcileResult | BaseException] | None = None,
        kind: str = "change",
    ) -> None:
        """Queue a change reconcile (or clean-up) of `entry`, on the event loop's thread.

        Without a waiter, a job already queued for the resource is not queued twice."""
        if done is None:
            if (entry.uid, kind) in self._queued:
                return
            self._queued.add((entry.uid, kind))
        if kind == "change":
            entry.queued_generation = entry.generation
        self._changes.append(_Change(entry, done, kind))
        self._poke()

    # --- the workers -------------------------------------------------------------------------

    def _change_job(self, entry: Entry) -> ReconcileResult | BaseException:
        with entry.lock:
            try:
                result: ReconcileResult | BaseException = self._run(entry, "change")
            except BaseException as error:  # handed to the waiting handler
                result = error
                if not isinstance(error, ClientError):
                    log_crash(f"reconcile of {entry.namespace}/{entry.name}", error)
                    self._set_due(entry, time.monotonic() + self.interval)
                elif self.changes_from_events:
                    delay = self._count_failure(entry)
                    self._set_due(entry, time.monotonic() + (delay or self.interval))
        self._finished(entry, result)
        return result

    def _cleanup_job(self, entry: Entry) -> None:
        assert self.finalize is not None
        with entry.lock:
            try:
                self.finalize(entry)
                entry.failures = 0
                return
            except ClientError as error:
                delay = self._count_failure(entry) or self.interval
                log.warning(
                    "clean-up of %s/%s failed: %s; again in %.0fs",
                    entry.namespace,
                    entry.name,
                    error.message,
                    delay,
                )
            except Exception as error:
                delay = self.interval
                log_crash(f"clean-up of {entry.namespace}/{entry.name}", error)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(
                    loop.call_later, delay, self.enqueue_change, entry, None, "cleanup"
                )

    def _resync_job(self, entry: Entry) -> None:
        if not entry.lock.acquire(blocking=False):
            return  # a handler is reconciling it right now
        result: ReconcileResult | None = None
        try:
            result = self._run(entry, "resync")
        except ClientError as error:
            delay = self._count_failure(entry)
            self._set_due(entry, time.monotonic() + (delay or self.interval))
            log.warning("resync of %s/%s failed: %s", entry.namespace, entry.name, error.message)
        except Exception as error:
            self._set_due(entry, time.monotonic() + self.interval)
            log_crash(f"resync of {entry.namespace}/{entry.name}", error)
        finally:
            entry.lock.release()
        self._finished(entry, result)

    def _finished(self, entry: Entry, result: ReconcileResult | BaseException | None) -> None:
        if self.on_finished is not None:
            self.on_finished(entry, result if isinstance(result, ReconcileResult) else None)

    # --- the dispatcher ----------------------------------------------------------------------

    def _next_change(self) -> _Change | None:
        """The oldest queued change whose resource is not being reconciled right now."""
        skipped: list[_Change] = []
        found: _Change | None = None
        while self._changes:
            change = self._changes.popleft()
            entry = change.entry
            if change.done is None:
                self._queued.discard((entry.uid, change.kind))
            if not self.owns(entry.namespace, entry.name, entry.uid) or self._gone(entry):
                if change.done is not None and not change.done.done():
                    change.done.set_result(ReconcileResult(outcome=Outcome.READY, gone=True))
                continue
            if entry.uid in self.running:
                skipped.append(change)
                if change.done is None:
                    self._queued.add((entry.uid, change.kind))
                continue
            found = change
            break
        self._changes.extendleft(reversed(skipped))
        return found

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: start changes first, then due resyncs, `workers` at a time."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        wake = self._wake = asyncio.Event()

        async def stopper() -> None:
            await stop.wait()
            wake.set()

        stopping = asyncio.create_task(stopper())
        running: dict[str, asyncio.Future[Any]] = {}
        last_estimate = 0.0
        with ThreadPoolExecutor(
            max_workers=self.config.workers, thread_name_prefix="reconcile"
        ) as pool:
            while not stop.is_set():
                wake.clear()
                for uid in [uid for uid, fut in running.items() if fut.done()]:
                    running.pop(uid)
                    self.running.pop(uid, None)
                now = time.monotonic()
                if now - last_estimate > 5:
                    self._update_interval()
                    last_estimate = now
                while len(running) < self.config.workers:
                    change = self._next_change()
                    if change is not None:
                        running[change.entry.uid] = self._start_change(loop, pool, change)
                        self.running[change.entry.uid] = change.kind
                        continue
                    entry = self._next_resync(time.monotonic())
                    if entry is None:
                        break
                    future = loop.run_in_executor(pool, self._resync_job, entry)
                    future.add_done_callback(lambda _: self._poke())
                    running[entry.uid] = future
                    self.running[entry.uid] = "resync"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self._next_wakeup(time.monotonic()))
            stopping.cancel()
            if running:
                await asyncio.gather(*running.values(), return_exceptions=True)
            for change in self._changes:
                if change.done is not None and not change.done.done():
                    change.done.cancel()
            self._changes.clear()
            self.running.clear()
        self._wake = None
        self._loop = None

    def _start_change(
        self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor, change: _Change
    ) -> asyncio.Future[Any]:
        if change.kind == "cleanup":
            cleanup = loop.run_in_executor(pool, self._cleanup_job, change.entry)
            cleanup.add_done_callback(lambda _: self._poke())
            return cleanup
        future = loop.run_in_executor(pool, self._change_job, change.entry)

        def deliver(fut: asyncio.Future[ReconcileResult | BaseException]) -> None:
            if change.done is not None and not change.done.done():
                if fut.cancelled():
                    change.done.cancel()
                else:
                    change.done.set_result(fut.result())
            self._poke()

        future.add_done_callback(deliver)
        return future
