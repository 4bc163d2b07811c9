"""The fence refuses on its own once the last renewal is older than the renew deadline.

A paused leader (SIGSTOP) resumes with its worker threads running at once while its renewal
loop has not yet noticed anything: the fence must not wait for that loop.
"""

from __future__ import annotations

import time

import pytest

from lokifi_storage.reconcile.fence import Fence, LeadershipLost


def test_a_fence_without_a_lease_never_expires() -> None:
    fence = Fence()
    fence.check("a write")
    assert not fence.lost


def test_a_fence_refuses_once_the_renewal_is_overdue_and_cancels_what_runs() -> None:
    fence = Fence()
    fence.hold_until(time.monotonic() + 0.2)
    cancelled: list[str] = []
    with fence.watch(lambda: cancelled.append("statement")):
        fence.check("a write before the deadline")
        time.sleep(0.3)  # the process was stopped past its renew deadline
        with pytest.raises(LeadershipLost):
            fence.check("a write after the resume")
    assert fence.lost
    assert cancelled == ["statement"]
    fence.hold_until(time.monotonic() + 60)  # a late renewal does not undo the loss
    assert fence.lost


def test_a_watch_opened_after_the_deadline_cancels_at_once() -> None:
    fence = Fence()
    fence.hold_until(time.monotonic() - 0.01)
    cancelled: list[str] = []
    with fence.watch(lambda: cancelled.append("statement")):
        pass
    assert cancelled == ["statement"]
