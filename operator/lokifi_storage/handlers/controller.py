"""Who reconciles what, when: the glue between Kopf's handlers and the resource reconciler.

Kopf calls `reconcile_now` on create/update/resume (spec changes); `observe` on every watch
event keeps an in-memory list of the resources; `run_resync` re-reconciles each resource when
it is due: every `resync_seconds` when Ready, sooner with backoff when not (domain/requeue.py).

Why not `kopf.timer`: Kopf puts a finalizer on every object a timer or daemon watches, and the
Retain policy promises no finalizer. Why not `kopf.TemporaryError` for a part that is down:
Kopf persists every retry in the object (a PATCH each), while this schedule is in memory and
retrying writes nothing. Kopf's own retry is kept for what it is good at: a failure to talk to
the Kubernetes API itself while handling a change.

A per-resource lock makes sure a handler and a resync never reconcile the same resource at
once; a resync finds the lock taken and simply skips that round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.domain.requeue import Outcome, next_delay
from lokifi_storage.reconcile.resource import ReconcileResult, ResourceReconciler

__all__ = ["Controller", "ControllerConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerConfig:
    """Scheduling settings from the command line."""

    resync_seconds: float = 300.0
    first_retry_seconds: float = 2.0
    workers: int = 4
    tick_seconds: float = 0.5


@dataclass
class _Entry:
    namespace: str
    name: str
    uid: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    due: float | None = None  # monotonic; None = only on the next change
    failures: int = 0
    deleting: bool = False


class Controller:
    """The resources this operator serves, their schedule, and the calls into the reconciler."""

    def __init__(self, reconciler: ResourceReconciler, config: ControllerConfig | None = None):
        self.reconciler = reconciler
        self.config = config or ControllerConfig()
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()
        self.reconciles = 0  # a counter for the liveness endpoint and benchmarks

    # --- bookkeeping -------------------------------------------------------------------------

    def _entry(self, namespace: str, name: str, uid: str) -> _Entry:
        with self._guard:
            entry = self._entries.get(uid)
            if entry is None:
                entry = _Entry(namespace=namespace, name=name, uid=uid)
                self._entries[uid] = entry
            return entry

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Keep the list of resources current from a watch event (no API calls, except that a
        deleted resource releases its claims on shared things)."""
        meta = body.get("metadata", {})
        uid = meta.get("uid")
        if not uid:
            return
        if event_type == "DELETED":
            with self._guard:
                entry = self._entries.pop(uid, None)
            try:
                if entry is None:
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

    def known(self) -> int:
        with self._guard:
            return len(self._entries)

    def _schedule(self, entry: _Entry, result: ReconcileResult) -> None:
        if result.gone:
            entry.due = None
            return
        if result.outcome is Outcome.READY:
            entry.failures = 0
        delay = next_delay(
            result.outcome,
            entry.failures,
            self.config.resync_seconds,
            self.config.first_retry_seconds,
        )
        if result.outcome is Outcome.NOT_READY:
            entry.failures += 1
        entry.due = None if delay is None else time.monotonic() + delay

    def _count_failure(self, entry: _Entry) -> float | None:
        """Count one more attempt for `entry` that a ClientError cut short; return the backoff.

        The handlers (through Kopf's retry) and the resync loop both back off from such an
        error as from a not-Ready reconcile, and share `entry.failures`, so a flapping server
        is retried on one schedule whichever path met it.
        """
        entry.failures += 1
        return next_delay(
            Outcome.NOT_READY,
            entry.failures,
            self.config.resync_seconds,
            self.config.first_retry_seconds,
        )

    def _run(self, entry: _Entry) -> ReconcileResult:
        started = time.monotonic()
        result = self.reconciler.reconcile(entry.namespace, entry.name)
        self.reconciles += 1
        self._schedule(entry, result)
        log.info(
            "reconciled %s/%s in %.2fs: %s%s%s",
            entry.namespace,
            entry.name,
            time.monotonic() - started,
            result.outcome.value,
            f" ({result.ready_message})" if result.outcome is not Outcome.READY else "",
            "" if result.status_patched else ", status unchanged",
        )
        return result

    # --- called by Kopf handlers (in Kopf's executor threads) -------------------------------

    def reconcile_now(self, namespace: str, name: str, uid: str) -> None:
        """Reconcile after a change; Kopf's retry only for failures of the Kubernetes API."""
        entry = self._entry(namespace, name, uid)
        with entry.lock:
            try:
                result = self._run(entry)
            except ClientError as error:
                delay = self._count_failure(entry)
                raise kopf.TemporaryError(
                    f"Kubernetes API: {error.message}", delay=delay or 10
                ) from None
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
        log.info("cleaned up %s/%s: %s", namespace, name, "; ".join(actions) or "nothing to do")

    # --- the resync loop ---------------------------------------------------------------------

    def _resync_one(self, entry: _Entry) -> None:
        if not entry.lock.acquire(blocking=False):
            return  # a handler is reconciling it right now
        try:
            self._run(entry)
        except ClientError as error:
            delay = self._count_failure(entry)
            entry.due = time.monotonic() + (delay or self.config.resync_seconds)
            log.warning("resync of %s/%s failed: %s", entry.namespace, entry.name, error.message)
        except Exception as error:
            # The type and the frames, not the message: an unknown exception's text could
            # quote a connection string.
            entry.due = time.monotonic() + self.config.resync_seconds
            log.error(
                "resync of %s/%s crashed with %s\n%s",
                entry.namespace,
                entry.name,
                type(error).__name__,
                "".join(traceback.format_tb(error.__traceback__)),
            )
        finally:
            entry.lock.release()

    def _due(self) -> list[_Entry]:
        now = time.monotonic()
        with self._guard:
            return [
                e
                for e in self._entries.values()
                if not e.deleting and e.due is not None and e.due <= now
            ]

    async def run_resync(self, stop: asyncio.Event) -> None:
        """Until `stop`: reconcile every resource that is due, `workers` at a time."""
        loop = asyncio.get_running_loop()
        running: dict[str, asyncio.Future[None]] = {}
        with ThreadPoolExecutor(
            max_workers=self.config.workers, thread_name_prefix="resync"
        ) as pool:
            while not stop.is_set():
                for uid in [uid for uid, fut in running.items() if fut.done()]:
                    running.pop(uid)
                for entry in self._due():
                    if entry.uid in running or len(running) >= self.config.workers:
                        continue
                    entry.due = None  # rescheduled by the reconcile itself
                    running[entry.uid] = loop.run_in_executor(pool, self._resync_one, entry)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.tick_seconds)
            if running:
                await asyncio.gather(*running.values(), return_exceptions=True)
