"""Sharding across replicas: each resource belongs to one of `shards` shards by a stable hash of
its namespace and name, and each shard is served by whichever replica holds its Lease.

Leader election (one process active, the others idle; runtime/leadership.py) stays the default;
`--shards N` (N >= 2, chart value `shards`) replaces it. Every replica then watches every
resource (Kopf, watch events only: handlers/operator.py) and reconciles only those of the shards
it holds. A shard's Lease (`lokifi-storage-operator-shard-<k>`) is held, renewed and taken over
exactly as the leader's Lease (ShardLease is a LeaseElector): a replica that dies stops renewing,
and another replica takes the shard once the Lease has not moved for its duration.

How the shards spread: each round (every `renew_seconds`) a replica reads every shard Lease and
counts the live replicas (holders of a fresh Lease, and replicas asking for a shard). Its fair
share is ceil(shards / live). Below it, it takes a free or expired shard, or, when none is free,
asks the replica holding the most for one (annotation `storage.lokifi.ai/wanted-by` on one of
its Leases, refreshed while it still wants). Above it, a replica hands over a shard another one
asked for: it stops starting work for that shard, waits for its reconciles in flight to end,
then releases the Lease, which the asker takes at its next round. Three replicas started
together end with one shard each; a replica that dies is replaced within the Lease time.

Never two replicas on one resource: work for a resource is started only while its shard is
held, a shard is given away only after its reconciles in flight ended, and a shard whose Lease
could not be renewed is dropped after `lease_seconds * 2/3`, a third of the Lease before any
other replica may take it over. Each held shard has its own fence (reconcile/fence.py), which
the resource's pass writes under: dropping the shard shuts it, so the statements of that shard's
passes still running are cancelled and nothing more is written, and a replica that was paused
past the renew deadline finds it shut before its next write, as a lone leader does.

Why not Kopf's handlers here: each replica's Kopf would run its create/update handlers for every
resource and record them as handled in the resource's annotations (even when a filter skips
them), so the owner could miss a change another replica recorded. In sharded mode the owner
notices a new generation from the watch events (runtime/controller.py), and the finalizer of
`deletionPolicy: Delete` is added, served and removed by the owner (runtime/finalizers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from lokifi_storage import metrics
from lokifi_storage.builders.names import LEASE_NAME
from lokifi_storage.clients.errors import ClientError, Conflict
from lokifi_storage.clients.kube import LEASES, KubeClient
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.runtime.controller import Controller
from lokifi_storage.runtime.leadership import LeaseConfig, LeaseElector

__all__ = [
    "ShardConfig",
    "ShardKeeper",
    "ShardLease",
    "shard_lease_name",
    "shard_of",
]

log = logging.getLogger(__name__)

WANTED_BY: Final = "storage.lokifi.ai/wanted-by"


def shard_of(namespace: str, name: str, shards: int) -> int:
    """The shard of a resource: stable across processes, restarts and Python versions."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_lease_name(shard: int) -> str:
    return f"{LEASE_NAME}-shard-{shard}"


def fair_share(shards: int, live: int) -> int:
    return math.ceil(shards / max(1, live))


@dataclass(frozen=True)
class ShardConfig:
    """How many shards, where their Leases are, and how fast they move."""

    shards: int
    namespace: str
    identity: str
    lease_seconds: int = 30
    renew_seconds: float = 10.0

    @property
    def renew_deadline(self) -> float:
        """A shard not renewed this long is dropped (before anyone may take it over)."""
        return self.lease_seconds * 2 / 3


@dataclass(frozen=True)
class LeaseView:
    """One shard Lease as read this round."""

    holder: str
    expired: bool
    wanted_by: str | None
    lease: Mapping[str, Any] | None


class ShardLease(LeaseElector):
    """The Lease of one shard: the leader's algorithm, plus reading without taking."""

    def look(self, now_wall: float, want_ttl: float) -> LeaseView:
        """Read the Lease, keep the observation the take-over clock runs on, write nothing."""
        lease = self.kube.get(LEASES, self.config.namespace, self.config.name)
        if lease is None:
            return LeaseView("", True, None, None)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed_record:
            self._observed_record = record
            self._observed_at = time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_seconds)
        expired = not holder or time.monotonic() > self._observed_at + duration
        wanted = ((lease.get("metadata") or {}).get("annotations") or {}).get(WANTED_BY, "")
        who, _, stamp = wanted.partition(" ")
        fresh = bool(who) and _float(stamp) + want_ttl >= now_wall
        return LeaseView(holder, expired, who if fresh else None, lease)

    def ask(self, lease: Mapping[str, Any], identity: str, now_wall: float) -> None:
        """Ask the holder for this shard (a conflict just means: ask again next round)."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.config.name,
                "namespace": self.config.namespace,
                "resourceVersion": lease["metadata"]["resourceVersion"],
                "annotations": {WANTED_BY: f"{identity} {now_wall:.0f}"},
            },
            "spec": dict(lease.get("spec") or {}),
        }
        with contextlib.suppress(Conflict):
            self.kube.replace(LEASES, body)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


class ShardKeeper:
    """Holds this replica's shards and tells the controller which resources are its own."""

    def __init__(
        self,
        kube: KubeClient,
        config: ShardConfig,
        controller: Controller,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.config = config
        self.controller = controller
        self._wall = wall
        self.leases = [
            ShardLease(
                kube,
                LeaseConfig(
                    namespace=config.namespace,
                    name=shard_lease_name(k),
                    identity=config.identity,
                    lease_seconds=config.lease_seconds,
                    renew_seconds=config.renew_seconds,
                    retry_seconds=min(2.0, config.lease_seconds / 10),
                    renew_deadline_seconds=config.renew_deadline,
                ),
                on_renewed=functools.partial(self._renewed, k),
            )
            for k in range(config.shards)
        ]
        self.held: set[int] = set()
        self._releasing: set[int] = set()
        self._fences: dict[int, Fence] = {}
        controller.owns = self.owns
        controller.fence_for = self.fence_for
        controller.changes_from_events = True

    def owns(self, namespace: str, name: str, uid: str) -> bool:
        return shard_of(namespace, name, self.config.shards) in self.held

    def fence_for(self, namespace: str, name: str) -> Fence:
        """The fence of the resource's shard; a shut one when this replica does not hold it."""
        fence = self._fences.get(shard_of(namespace, name, self.config.shards))
        if fence is None:
            fence = Fence()
            fence.lose()
        return fence

    def _renewed(self, k: int, deadline: float) -> None:
        fence = self._fences.get(k)
        if fence is not None:
            fence.hold_until(deadline)

    # --- one round (in a thread: it blocks on the API) ---------------------------------------

    def round(self) -> list[int]:
        """Renew, read, then take, ask for or hand over at most one shard.

        Returns the shards newly acquired (the caller adopts their resources on the loop)."""
        now = time.monotonic()
        wall = self._wall()
        want_ttl = 3 * self.config.renew_seconds
        # Read before renewing: a renewal rewrites the Lease and drops a request on it.
        views: dict[int, LeaseView] = {}
        for k, lease in enumerate(self.leases):
            try:
                views[k] = lease.look(wall, want_ttl)
            except ClientError as error:
                log.warning("shard %d: %s", k, error.message)
        for k in sorted(self.held | self._releasing):
            self._renew(k, now)
        live = {v.holder for v in views.values() if v.holder and not v.expired}
        live |= {v.wanted_by for v in views.values() if v.wanted_by}
        live.add(self.config.identity)
        share = fair_share(self.config.shards, len(live))
        mine = self.held - self._releasing
        if len(mine) > share:
            for k in sorted(mine):
                asker = views[k].wanted_by if k in views else None
                if asker and asker != self.config.identity:
                    self._begin_release(k, asker)
                    break
            return []
        if len(mine) >= share:
            return []
        free = [k for k in self._preference() if k in views and k not in self.held]
        free = [k for k in free if views[k].expired]
        for k in free:
            if self._take(k):
                return [k]
        counts: dict[str, list[int]] = {}
        for k, view in views.items():
            if view.holder and not view.expired and view.holder != self.config.identity:
                counts.setdefault(view.holder, []).append(k)
        if counts:
            holder, shards = max(counts.items(), key=lambda item: (len(item[1]), item[0]))
            if len(shards) > share or (len(shards) > 1 and len(mine) == 0):
                k = shards[-1]
                body = views[k].lease
                if body is not None and views[k].wanted_by != self.config.identity:
                    log.info("asking %s for shard %d", holder, k)
                if body is not None:
                    try:
                        self.leases[k].ask(body, self.config.identity, wall)
                    except ClientError as error:
                        log.warning("shard %d: %s", k, error.message)
        return []

    def _preference(self) -> list[int]:
        """Shards in an order of this replica's own, so replicas starting together try
        different shards first."""
        start = shard_of("", self.config.identity, self.config.shards)
        return [(start + i) % self.config.shards for i in range(self.config.shards)]

    def _renew(self, k: int, now: float) -> None:
        lease = self.leases[k]
        try:
            if lease.try_acquire_or_renew():
                return
            # A conflict (someone asked for the shard in between) is not a loss: look again.
            view = lease.look(self._wall(), 0)
            if view.holder == self.config.identity:
                return
            self._drop(k, f"taken over by {view.holder or 'nobody'}")
            return
        except ClientError as error:
            log.warning("shard %d: renewal failed: %s", k, error.message)
        if now - lease.last_renewed > self.config.renew_deadline:
            self._drop(k, f"not renewed for {self.config.renew_deadline:.0f}s")

    def _take(self, k: int) -> bool:
        self._fences[k] = Fence()  # a new term: the last one's fence stays shut
        try:
            won = self.leases[k].try_acquire_or_renew()
        except ClientError as error:
            log.warning("shard %d: %s", k, error.message)
            return False
        if won:
            self.held.add(k)
            metrics.set_shards_held(len(self.held))
            log.info("holding shard %d of %d as %s", k, self.config.shards, self.config.identity)
        return won

    def _shut(self, k: int) -> None:
        fence = self._fences.pop(k, None)
        if fence is not None:
            fence.lose()

    def _drop(self, k: int, why: str) -> None:
        self._shut(k)  # its passes in flight stop now, a third of the Lease before a takeover
        self.held.discard(k)
        metrics.set_shards_held(len(self.held))
        self._releasing.discard(k)
        self.leases[k].leading = False
        log.error("shard %d dropped: %s", k, why)

    def _begin_release(self, k: int, asker: str) -> None:
        self._releasing.add(k)
        self.held.discard(k)  # no new work for it from now on
        metrics.set_shards_held(len(self.held))
        log.info("handing shard %d over to %s", k, asker)

    def finish_releases(self) -> None:
        """Release the shards being handed over once none of their reconciles is in flight."""
        for k in sorted(self._releasing):
            if any(
                shard_of(e.namespace, e.name, self.config.shards) == k
                for e in self.controller.entries()
                if e.uid in self.controller.running
            ):
                continue
            self._releasing.discard(k)
            self._shut(k)
            self.leases[k].release()
            log.info("released shard %d", k)

    def release_all(self) -> None:
        for k in sorted(self.held | self._releasing):
            self._shut(k)  # nothing written under a Lease being let go
            self.leases[k].release()
        self.held.clear()
        self._releasing.clear()

    # --- the loop ------------------------------------------------------------------------------

    async def keep(self, stop: asyncio.Event) -> None:
        """Until `stop`: a round every `renew_seconds` (sooner while handing a shard over)."""
        while not stop.is_set():
            try:
                taken = await asyncio.to_thread(self.round)
            except ClientError as error:
                log.warning("shards: %s", error.message)
                taken = []
            for k in taken:
                self.controller.adopt(self._in_shard(k))
            wait = self.config.renew_seconds
            if self._releasing:
                await asyncio.to_thread(self.finish_releases)
                wait = min(wait, 0.2) if self._releasing else wait
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    def _in_shard(self, k: int) -> Callable[[str, str], bool]:
        return lambda namespace, name: shard_of(namespace, name, self.config.shards) == k

    def describe(self) -> str:
        return ",".join(str(k) for k in sorted(self.held)) or "none"
