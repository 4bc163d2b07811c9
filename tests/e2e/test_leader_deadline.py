"""A leader whose network dies steps down before any standby may take over (path 8).

Two electors against the real API server: the leader's own requests then go to a socket that
accepts connections and never answers (a dead network: requests hang until their timeout),
while the standby keeps reaching the API server. The leader must give up leadership (its
`on_lost` runs, `lost` is set) strictly before the standby acquires the Lease, so there is no
moment with two leaders; and it must do so without waiting for its hanging request.

A leader that is paused instead (SIGSTOP) cannot run any loop at all; its fence must refuse the
first write after the resume on its own, by the renew deadline of its last renewal.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s_client

from lokifi_storage.builders.labels import Owner
from lokifi_storage.clients.kube import EVENTS, KubeClient, ObjectRef
from lokifi_storage.domain.events import EventSpec
from lokifi_storage.reconcile.fence import Fence, LeadershipLost
from lokifi_storage.reconcile.publish import post_events
from lokifi_storage.runtime.leadership import LeaseConfig, LeaseElector
from stackfixtures import StackEnv

# Seconds: a standby takes over after this long without a renewal. Shorter than one hanging
# request (the client's 5 s connect timeout), so a leader that waits for its request to fail
# before it looks at the clock is still leading when the standby takes over.
LEASE = 4


@pytest.fixture
def dead_network() -> Iterator[str]:
    """https://127.0.0.1:<port> of a socket that accepts connections and never answers."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(16)
    try:
        yield f"https://127.0.0.1:{sink.getsockname()[1]}"
    finally:
        sink.close()


def _config(namespace: str, identity: str) -> LeaseConfig:
    return LeaseConfig(
        namespace=namespace,
        name="lokifi-storage-operator-test",
        identity=identity,
        lease_seconds=LEASE,
        renew_seconds=1.0,
        retry_seconds=0.5,
        renew_deadline_seconds=2.5,
    )


def test_a_cut_off_leader_steps_down_before_the_standby_takes_over(
    kube_stack: StackEnv, k8s_namespace: str, dead_network: str
) -> None:
    assert kube_stack.kubeconfig is not None
    real = KubeClient.from_environment(kube_stack.kubeconfig)
    configuration = copy.copy(real._api.configuration)
    configuration.host = dead_network
    cut_off = KubeClient(k8s_client.ApiClient(configuration))
    times: dict[str, float] = {}
    leader = LeaseElector(
        real,
        _config(k8s_namespace, "leader"),
        on_lost=lambda: times.setdefault("on_lost", time.monotonic()),
    )
    standby = LeaseElector(real, _config(k8s_namespace, "standby"))

    async def scenario() -> None:
        assert await asyncio.to_thread(leader.try_acquire_or_renew)
        leader.kube = cut_off  # from now on every renewal hangs
        stop, lost = asyncio.Event(), asyncio.Event()
        keeper = asyncio.create_task(leader.keep(stop, lost))

        async def step_down() -> None:
            await lost.wait()
            times["lost"] = time.monotonic()

        async def take_over() -> None:
            assert await standby.acquire(asyncio.Event())
            times["acquired"] = time.monotonic()

        watcher = asyncio.create_task(step_down())
        await asyncio.wait_for(take_over(), timeout=LEASE * 5)
        await asyncio.wait_for(watcher, timeout=LEASE * 5)
        stop.set()
        await asyncio.wait_for(keeper, timeout=5)

    try:
        asyncio.run(scenario())
    finally:
        standby.release()
        real.close()
    assert "lost" in times, "the leader never stepped down"
    assert times["on_lost"] <= times["lost"] < times["acquired"], times
    assert not leader.leading


def test_a_paused_leader_refuses_writes_before_its_renewal_loop_runs(
    kube_stack: StackEnv, k8s_namespace: str
) -> None:
    """A stopped process (SIGSTOP longer than the Lease) resumes with its threads running before
    the renewal loop notices: the fence must already refuse, as the standby has taken over."""
    assert kube_stack.kubeconfig is not None
    real = KubeClient.from_environment(kube_stack.kubeconfig)
    fence = Fence()
    leader = LeaseElector(
        real,
        _config(k8s_namespace, "leader"),
        on_lost=fence.lose,
        on_renewed=fence.hold_until,
    )
    standby = LeaseElector(real, _config(k8s_namespace, "standby"))
    try:
        assert leader.try_acquire_or_renew()
        fence.check("a write while leading")
        assert not standby.try_acquire_or_renew()
        # The leader is stopped: no renewal loop runs; the standby keeps polling and takes over.
        took_over = asyncio.run(asyncio.wait_for(standby.acquire(asyncio.Event()), LEASE * 3))
        assert took_over
        # Resumed: a worker thread's next write comes before any renewal attempt.
        with pytest.raises(LeadershipLost):
            fence.check("a write after the resume")
        assert fence.lost
    finally:
        standby.release()
        real.close()


def test_a_paused_leader_posts_no_event_after_its_renewal_deadline(
    kube_stack: StackEnv, k8s_namespace: str
) -> None:
    """A pass paused between its status write and its Events resumes past the deadline of its
    last renewal: the Events it was about to post are dropped, not sent next to the new leader."""
    assert kube_stack.kubeconfig is not None
    kube = KubeClient.from_environment(kube_stack.kubeconfig)
    owner = Owner(
        namespace=k8s_namespace, name="paused", uid="00000000-0000-0000-0000-000000000001"
    )
    events = [EventSpec("Normal", "Reconciled", "one"), EventSpec("Normal", "Reconciled", "two")]
    now = datetime.now(UTC)
    try:
        leading = Fence()
        leading.hold_until(time.monotonic() + 60)
        post_events(kube, owner, events[:1], now, "op-0", leading)
        assert len(kube.list_objects(EVENTS, k8s_namespace)) == 1

        resumed = Fence()
        resumed.hold_until(time.monotonic() - 0.1)  # its last renewal's deadline has passed
        post_events(kube, owner, events, now, "op-0", resumed)
        assert len(kube.list_objects(EVENTS, k8s_namespace)) == 1
        assert resumed.lost
    finally:
        kube.close()


def test_every_kubernetes_write_of_a_pass_asks_the_fence_and_reads_do_not(
    kube_stack: StackEnv, k8s_namespace: str
) -> None:
    """A pass is a run of writes (objects, status, Events): each one asks the fence right before
    it is sent, so a leader paused between two of them sends neither after its renewal deadline.
    Reads are not fenced, and another thread's writes are not under this pass's fence."""
    assert kube_stack.kubeconfig is not None
    kube = KubeClient.from_environment(kube_stack.kubeconfig)
    owner = Owner(
        namespace=k8s_namespace, name="paused", uid="00000000-0000-0000-0000-000000000002"
    )
    now = datetime.now(UTC)
    fence = Fence()
    fence.hold_until(time.monotonic() + 60)
    try:
        with kube.writes_under(fence.check):
            post_events(kube, owner, [EventSpec("Normal", "Reconciled", "one")], now, "op-0")
            fence.hold_until(time.monotonic() - 0.1)  # paused here past the renewal deadline
            with pytest.raises(LeadershipLost, match="POST /api/v1/namespaces/"):
                kube.post_event(
                    ObjectRef("v1", "ConfigMap", k8s_namespace, "x", owner.uid),
                    "Normal",
                    "Reconciled",
                    "two",
                    component="test",
                    instance="op-0",
                    now=now,
                )
            assert len(kube.list_objects(EVENTS, k8s_namespace)) == 1  # a read still goes

            other: list[BaseException] = []

            def elsewhere() -> None:
                try:
                    post_events(kube, owner, [EventSpec("Normal", "Reconciled", "3")], now, "x")
                except BaseException as error:  # pragma: no cover - reported below
                    other.append(error)

            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join()
            assert other == []
        assert len(kube.list_objects(EVENTS, k8s_namespace)) == 2
    finally:
        kube.close()
