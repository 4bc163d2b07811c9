"""Whether this process may still write: the leader's fence.

Leader election (runtime/leadership.py) decides who writes; this is how the work already under
way learns that the decision changed. When the Lease is lost, `lose()` is called once: every
part checks `check()` before each change it makes, and the statements running at that moment
are cancelled through the callbacks registered with `watch()`, so a part in flight stops at
once instead of finishing its plan next to the new leader.

A leader that is paused (SIGSTOP, a frozen VM, a long stall) cannot run its renewal loop, so
`lose()` would only come once the loop wakes up, after the threads doing its work have already
resumed and sent their next statement next to the new leader. So the elector also tells the
fence until when the last renewal holds (`hold_until`: the renew deadline counted from when that
renewal was sent, on the monotonic clock, which keeps running while the process is stopped), and
`check()` refuses past it on its own: a resumed ex-leader writes nothing before it re-acquires.

A standalone operator (no election) uses a fence that is never lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError

__all__ = ["Fence", "LeadershipLost"]


class LeadershipLost(ClientError):
    """The Lease was lost: this process no longer writes anything."""

    reason = Reason.LEADERSHIP_LOST


class Fence:
    """Set once when leadership is lost; thread-safe."""

    def __init__(self) -> None:
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._until: float | None = None  # monotonic; None: no Lease behind it (standalone)

    @property
    def lost(self) -> bool:
        if not self._lost.is_set() and self._expired():
            self.lose()
        return self._lost.is_set()

    def hold_until(self, deadline: float) -> None:
        """The Lease is this process's until `deadline` (time.monotonic()) unless renewed."""
        self._until = deadline

    def _expired(self) -> bool:
        until = self._until
        return until is not None and time.monotonic() >= until

    def lose(self) -> None:
        """Leadership is gone: refuse every further write and cancel what is running."""
        with self._lock:
            self._lost.set()
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            callback()

    def check(self, what: str) -> None:
        """Raise LeadershipLost before `what` when the Lease is gone or its renewal is overdue."""
        if self.lost:
            raise LeadershipLost(f"{what}: not done, this operator lost its Lease")

    @contextmanager
    def watch(self, cancel: Callable[[], None]) -> Iterator[None]:
        """Call `cancel` if leadership is lost while the block runs (at once if it is)."""
        with self._lock:
            key = self._next
            self._next += 1
            self._callbacks[key] = cancel
            lost = self._lost.is_set() or self._expired()
        try:
            if lost:
                cancel()
            yield
        finally:
            with self._lock:
                self._callbacks.pop(key, None)
