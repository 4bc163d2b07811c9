"""Who reconciles what, when: the glue between Kopf's handlers and the resource reconciler.

Two kinds of work share one pool of `workers` threads, in strict order:
1. changes: a resource created, its spec changed, or seen for the first time by this process
   (Kopf's create/update/resume handlers `await submit(...)`; in sharded mode the watch events
   themselves, see `observe`). They always go first, oldest first.
2. resyncs: every resource is re-observed when it is due, every `resync_seconds` when Ready,
   sooner with backoff when not (domain/requeue.py), earliest due first, and only when no
   change waits. So 1,000 resources created at once are all reconciled once before the first
   of them is resynced, and a spec change is never stuck behind a round of resyncs. When each
   resource is due, and how the interval stretches, is runtime/schedule.py.

Why not `kopf.timer`: Kopf puts a finalizer on every object a timer or daemon watches, and the
Retain policy promises no finalizer. Why not `kopf.TemporaryError` for a part that is down:
Kopf persists every retry in the object (a PATCH each), while this schedule is in memory and
retrying writes nothing. Kopf's own retry is kept for what it is good at: a failure to talk to
the Kubernetes API itself while handling a change.

A per-resource lock makes sure a change, a resync and a clean-up never reconcile the same
resource at once; the dispatcher also never starts two jobs for one resource.

`owns` (runtime/sharding.py) narrows the resources this process serves to its shards: work for
any other resource is dropped from the queues, never started.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.domain.requeue import Outcome
from lokifi_storage.reconcile.resource import ReconcileResult, ResourceReconciler
from lokifi_storage.runtime.schedule import ControllerConfig, Entry, Schedule, stretched_interval

__all__ = ["Controller", "ControllerConfig", "Entry", "stretched_interval"]

log = logging.getLogger(__name__)


@dataclass
class _Change:
    entry: Entry
    done: asyncio.Future[ReconcileResult | BaseException] | None = None
    kind: str = "change"  # or "cleanup" (sharded mode: the finalizer of deletionPolicy Delete)


def _opaque(error: Exception, what: str) -> kopf.TemporaryError:
    """An unexpected exception as Kopf may see it: its type, never its text.

    Kopf logs a handler's exception with its message and chained causes and stores the message
    in the resource's progress annotation; the text of an unknown exception could quote a
    connection string, so Kopf gets the type only and the operator logs the frames itself.
    """
    log.error(
        "%s crashed with %s\n%s",
        what,
        type(error).__name__,
        "".join(traceback.format_tb(error.__traceback__)),
    )
    return kopf.TemporaryError(
        f"{what} failed with {type(error).__name__}; see the operator log", delay=30
    )


class Controller(Schedule):
    """The resources this operator serves, their queue of changes, and the workers."""

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

    # --- what Kopf tells ---------------------------------------------------------------------

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Keep the list of resources current from a watch event (no API calls, except that a
        deleted resource releases its claims on shared things: `on_event` runs that in a
        thread).

        In sharded mode a new generation (one the status does not report yet, and no change
        was queued for) queues a change, as Kopf's create/update handlers do otherwise.
        """
        meta = body.get("metadata", {})
        uid = meta.get("uid")
        if not uid:
            return
        if event_type == "DELETED":
            with self._guard:
                entry = self._entries.pop(uid, None)
            owner = self.owns(meta.get("namespace", ""), meta.get("name", ""), uid)
            try:
                if not owner:
                    pass  # the replica serving its shard releases them
                elif entry is None:
                    self.reconciler.release(body)
                else:
                    with entry.lock:  # not while a reconcile of it may still be claiming
                        self.reconciler.release(body)
            except Exception as error:  # a claim left behind is reported, never fatal
                log.warning("releasing the claims of %s failed: %s", uid, type(error).__name__)
            self.reconciler.forget(uid, meta.get("namespace", ""), meta.get("name", ""))
            return
        entry = self._entry(meta["namespace"], meta["name"], uid)
        entry.deleting = bool(meta.get("deletionTimestamp"))
        entry.generation = meta.get("generation")
        entry.observed_generation = (body.get("status") or {}).get("observedGeneration")
        entry.finalizers = tuple(meta.get("finalizers") or ())
        entry.deletion_policy = (body.get("spec") or {}).get("deletionPolicy")
        if not self.changes_from_events or not self.owns(entry.namespace, entry.name, uid):
            return
        if entry.deleting:
            if self.needs_cleanup(entry):
                self.enqueue_change(entry, kind="cleanup")
            return
        if (
            entry.generation != entry.observed_generation
            and entry.generation != entry.queued_generation
        ):
            self.enqueue_change(entry)

    async def on_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """`observe` for Kopf's event handler, on the event loop; a deletion (which releases
        claims on the servers and waits for a reconcile in flight) in a thread."""
        if event_type == "DELETED":
            await asyncio.to_thread(self.observe, event_type, body)
        else:
            self.observe(event_type, body)

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

    def adopt(self, belongs: Callable[[str, str], bool]) -> None:
        """Resources of a shard just taken: a change for each whose status does not report its
        generation yet, a resync spread over the interval for the others."""
        now = time.monotonic()
        for entry in self.entries():
            if not belongs(entry.namespace, entry.name):
                continue
            if entry.deleting:
                if self.needs_cleanup(entry):
                    self.enqueue_change(entry, kind="cleanup")
            elif entry.generation != entry.observed_generation:
                self.enqueue_change(entry)
            else:
                self._set_due(entry, now + self._rng.uniform(0, self.interval))

    async def submit(self, namespace: str, name: str, uid: str) -> None:
        """Reconcile after a change, ahead of every resync, and wait for it (Kopf handlers).

        Kopf's retry only for failures of the Kubernetes API; an invalid spec is permanent.
        """
        entry = self._entry(namespace, name, uid)
        done: asyncio.Future[ReconcileResult | BaseException] = (
            asyncio.get_running_loop().create_future()
        )
        self.enqueue_change(entry, done)
        outcome = await done
        if isinstance(outcome, ClientError):
            delay = self._count_failure(entry)
            raise kopf.TemporaryError(f"Kubernetes API: {outcome.message}", delay=delay or 10)
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome.outcome is Outcome.INVALID:
            raise kopf.PermanentError(f"invalid spec: {outcome.ready_message}")

    def reconcile_now(self, namespace: str, name: str, uid: str) -> None:
        """Reconcile in the calling thread, now (tests and tools; the operator uses `submit`)."""
        entry = self._entry(namespace, name, uid)
        with entry.lock:
            try:
                result = self._run(entry)
            except ClientError as error:
                delay = self._count_failure(entry)
                raise kopf.TemporaryError(
                    f"Kubernetes API: {error.message}", delay=delay or 10
                ) from None
            except Exception as error:
                raise _opaque(error, f"reconcile of {namespace}/{name}") from None
        if result.outcome is Outcome.INVALID:
            raise kopf.PermanentError(f"invalid spec: {result.ready_message}")

    def clean_up(self, namespace: str, name: str, uid: str) -> None:
        """deletionPolicy Delete: remove what the operator created; retried until done."""
        entry = self._entry(namespace, name, uid)
        entry.deleting = True
        with entry.lock:
            try:
                actions = self.reconciler.clean_up(namespace, name)
            except ClientError as error:
                delay = self._count_failure(entry)
                raise kopf.TemporaryError(f"cleanup: {error.message}", delay=delay or 10) from None
            except Exception as error:
                raise _opaque(error, f"cleanup of {namespace}/{name}") from None
        log.info("cleaned up %s/%s: %s", namespace, name, "; ".join(actions) or "nothing to do")

    # --- the workers -------------------------------------------------------------------------

    def _change_job(self, entry: Entry) -> ReconcileResult | BaseException:
        with entry.lock:
            try:
                result: ReconcileResult | BaseException = self._run(entry, "change")
            except BaseException as error:  # handed to the waiting handler
                result = error
                if not isinstance(error, ClientError):
                    self._log_crash("reconcile", entry, error)
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
                self._log_crash("clean-up", entry, error)
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
            self._log_crash("resync", entry, error)
        finally:
            entry.lock.release()
        self._finished(entry, result)

    def _finished(self, entry: Entry, result: ReconcileResult | BaseException | None) -> None:
        if self.on_finished is not None:
            self.on_finished(entry, result if isinstance(result, ReconcileResult) else None)

    @staticmethod
    def _log_crash(what: str, entry: Entry, error: BaseException) -> None:
        # The type and the frames, not the message: an unknown exception's text could quote a
        # connection string.
        log.error(
            "%s of %s/%s crashed with %s\n%s",
            what,
            entry.namespace,
            entry.name,
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)),
        )

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
