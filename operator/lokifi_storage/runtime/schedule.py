"""When each resource is due: the bookkeeping under the queue of runtime/controller.py.

Every resource this process knows has an `Entry`; a resource due for a resync sits in a heap by
its due time. Resyncs are spread: each Ready resource is due again after the interval times a
random factor in [1 - jitter, 1 + jitter], so resources created in one burst drift apart instead
of coming due in one burst every interval. When the resources cannot all be resynced within the
interval (count x mean reconcile time / workers > 90% of it), the interval stretches to what a
round needs, says so in the log, and `lokifi_storage_resync_interval_seconds` shows it; it
shrinks back to `resync_seconds` once rounds fit again.

Kept apart from the queue of changes and the workers so that the timing rules (backoff, jitter,
the stretch) read in one place and the dispatcher reads as a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lokifi_storage import metrics
from lokifi_storage.domain.requeue import Outcome, next_delay
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.resource import ResourceReconciler
from lokifi_storage.reconcile.results import ReconcileResult

__all__ = ["ControllerConfig", "Entry", "Schedule", "stretched_interval"]

log = logging.getLogger(__name__)

#: a round may fill this share of the interval before the interval stretches
ROUND_HEADROOM = 0.9
#: how much one measured reconcile moves the running mean
MEAN_WEIGHT = 0.05


@dataclass(frozen=True)
class ControllerConfig:
    """Scheduling settings from the command line."""

    resync_seconds: float = 300.0
    first_retry_seconds: float = 2.0
    workers: int = 4
    tick_seconds: float = 0.5
    jitter: float = 0.1


@dataclass
class Entry:
    namespace: str
    name: str
    uid: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    due: float | None = None  # monotonic; None = only on the next change
    failures: int = 0
    deleting: bool = False
    generation: int | None = None  # metadata.generation of the newest event
    observed_generation: int | None = None  # status.observedGeneration of the newest event
    queued_generation: int | None = None  # generation a change was last queued for
    finalizers: tuple[str, ...] = ()  # metadata.finalizers of the newest event
    deletion_policy: str | None = None  # spec.deletionPolicy of the newest event
    body: Mapping[str, Any] | None = None  # the resource in the newest watch event
    # metadata.resourceVersion the last pass of this process left the resource at
    left_version: str | None = None


def stretched_interval(
    resync_seconds: float, resources: int, mean_seconds: float, workers: int
) -> float:
    """The resync interval that lets one round of `resources` finish on `workers` threads.

    `resync_seconds` while a round fits in ROUND_HEADROOM of it; longer otherwise, so that it
    does (pure: unit tested).
    """
    needed = resources * mean_seconds / max(1, workers)
    return max(resync_seconds, needed / ROUND_HEADROOM)


class Schedule:
    """The resources this process knows, when each is due, and one timed reconcile of one."""

    def __init__(
        self,
        reconciler: ResourceReconciler,
        config: ControllerConfig | None = None,
        *,
        rng: random.Random | None = None,
    ):
        self.reconciler = reconciler
        self.config = config or ControllerConfig()
        self._entries: dict[str, Entry] = {}
        self._guard = threading.Lock()
        self._rng = rng or random.Random()  # noqa: S311 - spreading timers, not secrets
        self._heap: list[tuple[float, str]] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.owns: Callable[[str, str, str], bool] = lambda namespace, name, uid: True
        # The fence a resource's pass writes under when not the process's own (a shard's).
        self.fence_for: Callable[[str, str], Fence | None] = lambda namespace, name: None
        self.interval = self.config.resync_seconds
        self.mean_seconds = 0.0
        self.reconciles = 0  # a counter for the liveness endpoint and benchmarks
        self.running: dict[str, str] = {}  # uid -> "change" | "resync", for tests and sharding
        metrics.set_resync_interval(self.interval)

    def _entry(self, namespace: str, name: str, uid: str) -> Entry:
        with self._guard:
            entry = self._entries.get(uid)
            if entry is None:
                entry = Entry(namespace=namespace, name=name, uid=uid)
                self._entries[uid] = entry
            return entry

    def known(self) -> int:
        with self._guard:
            return len(self._entries)

    def entries(self) -> list[Entry]:
        with self._guard:
            return list(self._entries.values())

    def _schedule(self, entry: Entry, result: ReconcileResult) -> None:
        if result.gone:
            entry.due = None
            return
        if result.outcome is Outcome.READY:
            entry.failures = 0
        delay = next_delay(
            result.outcome,
            entry.failures,
            self.interval,
            self.config.first_retry_seconds,
        )
        if result.outcome is Outcome.NOT_READY:
            entry.failures += 1
        if delay is not None and result.outcome is Outcome.READY:
            jitter = self.config.jitter
            delay *= 1 + self._rng.uniform(-jitter, jitter)
        self._set_due(entry, None if delay is None else time.monotonic() + delay)

    def _set_due(self, entry: Entry, due: float | None) -> None:
        entry.due = due
        if due is not None:
            with self._guard:
                heapq.heappush(self._heap, (due, entry.uid))
            self._poke()

    def _poke(self) -> None:
        """Wake the dispatcher (from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    def _count_failure(self, entry: Entry) -> float | None:
        """Count one more attempt for `entry` that a ClientError cut short; return the backoff.

        The handlers (through Kopf's retry) and the resync loop both back off from such an
        error as from a not-Ready reconcile, and share `entry.failures`, so a flapping server
        is retried on one schedule whichever path met it.
        """
        entry.failures += 1
        return next_delay(
            Outcome.NOT_READY,
            entry.failures,
            self.interval,
            self.config.first_retry_seconds,
        )

    def _run(self, entry: Entry, kind: str = "change") -> ReconcileResult:
        started = time.monotonic()
        wall = time.time()
        result = self.reconciler.reconcile(
            entry.namespace,
            entry.name,
            fence=self.fence_for(entry.namespace, entry.name),
            known=self._known(entry) if kind == "resync" else None,
        )
        entry.left_version = result.resource_version
        took = time.monotonic() - started
        self.reconciles += 1
        self.mean_seconds = (
            took
            if self.reconciles == 1
            else (1 - MEAN_WEIGHT) * self.mean_seconds + MEAN_WEIGHT * took
        )
        self._schedule(entry, result)
        log.info(
            "reconciled %s/%s in %.2fs: %s%s%s [%s %.3f-%.3f]",
            entry.namespace,
            entry.name,
            took,
            result.outcome.value,
            f" ({result.ready_message})" if result.outcome is not Outcome.READY else "",
            "" if result.status_patched else ", status unchanged",
            kind,
            wall,
            time.time(),
        )
        return result

    @staticmethod
    def _known(entry: Entry) -> Mapping[str, Any] | None:
        """The newest watch event's resource, for a resync instead of a GET, when its
        resourceVersion is the one the previous pass left: nobody changed the resource since
        (not even this process: its own status patch has a later version, until the event of
        that patch arrives). Watch events come in order, so that event is the resource as it is
        now, short of a change whose event is on its way, which a GET sent a moment earlier
        would miss the same way (and which queues its own pass when it arrives). Changes
        always read the resource: in leader mode Kopf holds back a resource's events while its
        change handler waits for the pass, so the newest event seen may be older there."""
        body = entry.body
        if body is None or entry.left_version is None:
            return None
        version = (body.get("metadata") or {}).get("resourceVersion")
        return body if version == entry.left_version else None

    def _gone(self, entry: Entry) -> bool:
        with self._guard:
            return self._entries.get(entry.uid) is not entry

    def _next_resync(self, now: float) -> Entry | None:
        with self._guard:
            while self._heap and self._heap[0][0] <= now:
                due, uid = heapq.heappop(self._heap)
                entry = self._entries.get(uid)
                if entry is None or entry.due != due or entry.deleting:
                    continue  # stale: rescheduled, removed or being deleted
                if not self.owns(entry.namespace, entry.name, entry.uid):
                    continue
                if uid in self.running:
                    # Busy with a change that reschedules it when done.
                    continue
                entry.due = None
                return entry
            return None

    def _next_wakeup(self, now: float) -> float:
        with self._guard:
            until = self._heap[0][0] - now if self._heap else self.config.tick_seconds
        return min(max(until, 0.01), self.config.tick_seconds)

    def resynced_resources(self) -> int:
        """Resources that have a resync scheduled (Ready or retrying), for the round estimate."""
        with self._guard:
            return sum(1 for e in self._entries.values() if e.due is not None)

    def _update_interval(self) -> None:
        scheduled = sum(1 for _ in self.running) + self.resynced_resources()
        interval = stretched_interval(
            self.config.resync_seconds, scheduled, self.mean_seconds, self.config.workers
        )
        if abs(interval - self.interval) > 0.1 * self.interval:
            if interval > self.config.resync_seconds:
                log.warning(
                    "resync: %d resources at %.2fs per reconcile on %d workers need %.0fs"
                    " per round; the interval stretches from %.0fs to %.0fs",
                    scheduled,
                    self.mean_seconds,
                    self.config.workers,
                    scheduled * self.mean_seconds / self.config.workers,
                    self.config.resync_seconds,
                    interval,
                )
            else:
                log.info("resync: rounds fit again; interval back to %.0fs", interval)
            self.interval = interval
            metrics.set_resync_interval(interval)
