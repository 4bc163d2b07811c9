"""Who reconciles what, when: the glue between Kopf's handlers and the resource reconciler.

Two kinds of work share one pool of `workers` threads, in strict order:
1. changes: a resource created, its spec changed, or seen for the first time by this process
   (Kopf's create/update/resume handlers `await submit(...)`; in sharded mode the watch events
   themselves, see `observe`). They always go first, oldest first.
2. resyncs: every resource is re-observed when it is due, every `resync_seconds` when Ready,
   sooner with backoff when not (domain/requeue.py), earliest due first, and only when no
   change waits. So 1,000 resources created at once are all reconciled once before the first
   of them is resynced, and a spec change is never stuck behind a round of resyncs. When each
   resource is due, and how the interval stretches, is runtime/schedule.py; the queue and the
   workers that run it, runtime/workers.py.

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
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.domain.requeue import Outcome
from lokifi_storage.reconcile.results import ReconcileResult
from lokifi_storage.runtime.schedule import ControllerConfig, Entry, stretched_interval
from lokifi_storage.runtime.workers import Workers, log_crash

__all__ = ["Controller", "ControllerConfig", "Entry", "stretched_interval"]

log = logging.getLogger(__name__)


def _opaque(error: Exception, what: str) -> kopf.TemporaryError:
    """An unexpected exception as Kopf may see it: its type, never its text.

    Kopf logs a handler's exception with its message and chained causes and stores the message
    in the resource's progress annotation; the text of an unknown exception could quote a
    connection string, so Kopf gets the type only and the operator logs the frames itself.
    """
    log_crash(what, error)
    return kopf.TemporaryError(
        f"{what} failed with {type(error).__name__}; see the operator log", delay=30
    )


class Controller(Workers):
    """The resources this operator serves, fed from what Kopf tells; the queue and the
    workers are runtime/workers.py."""

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
            namespace, name = meta.get("namespace", ""), meta.get("name", "")
            owner = self.owns(namespace, name, uid)
            fence = self.fence_for(namespace, name)
            try:
                if not owner:
                    pass  # the replica serving its shard releases them
                elif entry is None:
                    self.reconciler.release(body, fence)
                else:
                    with entry.lock:  # not while a reconcile of it may still be claiming
                        self.reconciler.release(body, fence)
            except Exception as error:  # a claim left behind is reported, never fatal
                log.warning("releasing the claims of %s failed: %s", uid, type(error).__name__)
            self.reconciler.forget(uid, namespace, name)
            return
        entry = self._entry(meta["namespace"], meta["name"], uid)
        entry.deleting = bool(meta.get("deletionTimestamp"))
        entry.generation = meta.get("generation")
        entry.observed_generation = (body.get("status") or {}).get("observedGeneration")
        entry.finalizers = tuple(meta.get("finalizers") or ())
        entry.deletion_policy = (body.get("spec") or {}).get("deletionPolicy")
        entry.body = body
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
            raise self._retry(entry, f"Kubernetes API: {outcome.message}")
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
                raise self._retry(entry, f"Kubernetes API: {error.message}") from None
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
                actions = self.reconciler.clean_up(
                    namespace, name, uid, self.fence_for(namespace, name)
                )
            except ClientError as error:
                raise self._retry(entry, f"cleanup: {error.message}") from None
            except Exception as error:
                raise _opaque(error, f"cleanup of {namespace}/{name}") from None
        log.info("cleaned up %s/%s: %s", namespace, name, "; ".join(actions) or "nothing to do")

    def _retry(self, entry: Entry, message: str) -> kopf.TemporaryError:
        """Kopf's retry after a failure of the Kubernetes API, with this resource's backoff."""
        delay = self._count_failure(entry)
        return kopf.TemporaryError(message, delay=delay or 10)
