"""Leader election with a coordination.k8s.io Lease: one operator process reconciles, the others
stand by.

The algorithm is client-go's: the holder renews `renewTime` every `renew_seconds`; a standby
polls the Lease (reads only) and takes it over once the holder has not renewed for
`lease_seconds` as measured on the standby's own clock (the time it last saw the record change,
not the holder's timestamps, so clock skew between nodes does not matter). Take-over and renewal
are PUTs with the resourceVersion read, so two standbys racing for an expired Lease cannot both
win: one gets 409 Conflict.

Timing has client-go's shape, lease_seconds > renew_deadline_seconds > renew_seconds >
retry_seconds: a leader that has not renewed for `renew_deadline_seconds` steps down, which is
before any standby may take over (`lease_seconds` without a renewal), so two leaders never
overlap. Each renewal attempt is itself bounded by what is left of the deadline: a request
hanging on a dead network counts against it instead of outliving it. Stepping down calls
`on_lost` at once (the fence in reconcile/fence.py: parts in flight stop, their statements are
cancelled), then the process exits and the Deployment restarts it as a standby. Each
successful round also tells `on_renewed` the moment (monotonic, counted from when the round was
sent) past which the leader must not write without a newer renewal: a process paused for longer
than the Lease resumes with its fence already shut, before this loop has run again. On a clean
shutdown the leader releases the Lease (empty holder), so a standby takes over at once instead
of waiting for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lokifi_storage.api.timestamps import rfc3339
from lokifi_storage.clients.errors import ClientError, Conflict
from lokifi_storage.clients.kube import LEASES, KubeClient

__all__ = ["LeaseConfig", "LeaseElector"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    """Where the Lease is and how fast it moves."""

    namespace: str
    name: str
    identity: str
    lease_seconds: int = 30
    renew_seconds: float = 10.0
    retry_seconds: float = 2.0
    renew_deadline_seconds: float | None = None  # default: two thirds of lease_seconds

    @property
    def renew_deadline(self) -> float:
        return self.renew_deadline_seconds or self.lease_seconds * 2 / 3

    def __post_init__(self) -> None:
        if not self.lease_seconds > self.renew_deadline > self.renew_seconds > self.retry_seconds:
            raise ValueError(
                "Lease timing must be lease_seconds > renew deadline > renew_seconds > "
                f"retry_seconds; got {self.lease_seconds} > {self.renew_deadline} > "
                f"{self.renew_seconds} > {self.retry_seconds}"
            )


class LeaseElector:
    """Acquire, hold and release one Lease."""

    def __init__(
        self,
        kube: KubeClient,
        config: LeaseConfig,
        clock: Callable[[], datetime] | None = None,
        on_lost: Callable[[], None] | None = None,
        on_renewed: Callable[[float], None] | None = None,
    ) -> None:
        self.kube = kube
        self.config = config
        self._on_lost = on_lost
        self._on_renewed = on_renewed
        self._clock = clock or (lambda: datetime.now(UTC))
        self._observed_record: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.leading = False
        self.last_renewed = 0.0  # monotonic time of the last successful acquire/renew

    # --- one attempt (synchronous: runs in a thread) -------------------------------------------

    def _body(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = rfc3339(self._clock(), "microseconds")
        spec = dict((previous or {}).get("spec") or {})
        transitions = int(spec.get("leaseTransitions") or 0)
        if spec.get("holderIdentity") != self.config.identity:
            spec["acquireTime"] = now
            if previous is not None:
                transitions += 1
        spec.update(
            {
                "holderIdentity": self.config.identity,
                "leaseDurationSeconds": self.config.lease_seconds,
                "renewTime": now,
                "leaseTransitions": transitions,
            }
        )
        metadata: dict[str, Any] = {"name": self.config.name, "namespace": self.config.namespace}
        if previous is not None:
            metadata["resourceVersion"] = previous["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def try_acquire_or_renew(self) -> bool:
        """One round: True when this process holds the Lease afterwards."""
        sent = time.monotonic()  # a standby counts from a moment after this: the safe bound
        lease = self.kube.get(LEASES, self.config.namespace, self.config.name)
        if lease is None:
            try:
                self.kube.create(LEASES, self._body(None))
            except Conflict:
                return False
            return self._won(sent)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed_record:
            self._observed_record = record
            self._observed_at = time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_seconds)
        expired = time.monotonic() > self._observed_at + duration
        if holder and holder != self.config.identity and not expired:
            self.leading = False
            return False
        try:
            self.kube.replace(LEASES, self._body(lease))
        except Conflict:
            self.leading = False
            return False
        if holder != self.config.identity:
            log.info(
                "acquired Lease %s/%s as %s",
                self.config.namespace,
                self.config.name,
                self.config.identity,
            )
        return self._won(sent)

    def _won(self, sent: float) -> bool:
        self.leading = True
        self.last_renewed = sent
        if self._on_renewed is not None:
            self._on_renewed(sent + self.config.renew_deadline)
        return True

    def release(self) -> None:
        """Give the Lease up (empty holder) if this process holds it."""
        if not self.leading:
            return
        try:
            lease = self.kube.get(LEASES, self.config.namespace, self.config.name)
            if (
                lease is None
                or (lease.get("spec") or {}).get("holderIdentity") != self.config.identity
            ):
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            self.kube.replace(LEASES, lease)
            log.info("released Lease %s/%s", self.config.namespace, self.config.name)
        except ClientError as error:
            log.warning("could not release the Lease: %s", error.message)
        finally:
            self.leading = False

    # --- loops ---------------------------------------------------------------------------------

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process leads (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.try_acquire_or_renew):
                    return True
            except ClientError as error:
                log.warning("Lease: %s", error.message)
            if not announced:
                holder = self._observed_record[0] if self._observed_record else "?"
                log.info(
                    "standing by: Lease %s/%s is held by %s",
                    self.config.namespace,
                    self.config.name,
                    holder,
                )
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.retry_seconds)
        return False

    async def keep(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        """Renew until `stop`; step down (`on_lost`, then `lost`) when the renew deadline
        passes without a renewal, or another process holds the Lease."""
        wait = self.config.renew_seconds
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
                return
            left = self.config.renew_deadline - (time.monotonic() - self.last_renewed)
            try:
                renewed = await asyncio.wait_for(
                    asyncio.to_thread(self.try_acquire_or_renew), timeout=max(left, 0.0)
                )
                if renewed:
                    wait = self.config.renew_seconds
                    continue
                log.error(
                    "Lease %s/%s was taken over by %s",
                    self.config.namespace,
                    self.config.name,
                    self._observed_record[0] if self._observed_record else "?",
                )
                self._step_down(lost)
                return
            except ClientError as error:
                log.warning("Lease renewal failed: %s", error.message)
            except TimeoutError:
                log.warning("Lease renewal did not answer within the renew deadline")
            wait = self.config.retry_seconds
            if time.monotonic() - self.last_renewed >= self.config.renew_deadline:
                log.error(
                    "Lease not renewed for %.0fs (renew deadline; it expires for the others "
                    "after %ss): stepping down",
                    self.config.renew_deadline,
                    self.config.lease_seconds,
                )
                self._step_down(lost)
                return
            wait = min(
                wait, max(self.config.renew_deadline - (time.monotonic() - self.last_renewed), 0.0)
            )

    def _step_down(self, lost: asyncio.Event) -> None:
        self.leading = False
        if self._on_lost is not None:
            self._on_lost()
        lost.set()
