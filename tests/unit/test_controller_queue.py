"""The controller's queue: changes before resyncs, resyncs spread, the interval stretching."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time

import pytest

from lokifi_storage import metrics
from lokifi_storage.domain.requeue import Outcome
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.results import ReconcileResult
from lokifi_storage.runtime.controller import Controller, ControllerConfig, stretched_interval

READY = ReconcileResult(outcome=Outcome.READY)


class RecordingReconciler:
    """Stands in for ResourceReconciler: Ready every time, in the order it is called."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.order: list[str] = []
        self.seconds = seconds
        self.active: set[str] = set()
        self.overlap = False
        self._lock = threading.Lock()
        self.fences: dict[str, Fence | None] = {}

    def reconcile(
        self, namespace: str, name: str, fence: Fence | None = None, known: object = None
    ) -> ReconcileResult:
        with self._lock:
            self.fences[name] = fence
            self.overlap |= name in self.active
            self.active.add(name)
            self.order.append(name)
        time.sleep(self.seconds)
        with self._lock:
            self.active.discard(name)
        return READY

    def forget(self, uid: str, namespace: str, name: str) -> None:
        pass


def make(reconciler: RecordingReconciler, **config: float) -> Controller:
    settings = {"resync_seconds": 60.0, "workers": 1, "tick_seconds": 0.05, **config}
    return Controller(
        reconciler,  # type: ignore[arg-type]
        ControllerConfig(**settings),  # type: ignore[arg-type]
        rng=random.Random(7),
    )


def body(name: str, generation: int = 1, observed: int | None = None) -> dict[str, object]:
    return {
        "metadata": {
            "uid": f"uid-{name}",
            "namespace": "ns",
            "name": name,
            "generation": generation,
        },
        "status": {} if observed is None else {"observedGeneration": observed},
    }


async def run_until(c: Controller, done: object, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.01)
    stop.set()
    await task


def test_changes_go_ahead_of_resyncs_that_are_already_due() -> None:
    rec = RecordingReconciler(seconds=0.01)
    c = make(rec)
    for name in ("r1", "r2", "r3"):
        c.observe("ADDED", body(name, observed=1))
        entry = c._entries[f"uid-{name}"]
        c._set_due(entry, time.monotonic() - 1)

    async def scenario() -> None:
        waits = [asyncio.create_task(c.submit("ns", n, f"uid-{n}")) for n in ("c1", "c2")]
        await run_until(c, lambda: len(rec.order) >= 5)
        await asyncio.gather(*waits)

    asyncio.run(scenario())
    assert rec.order[:2] == ["c1", "c2"]
    assert sorted(rec.order[2:5]) == ["r1", "r2", "r3"]


def test_a_change_arriving_during_a_round_overtakes_the_resyncs_still_waiting() -> None:
    rec = RecordingReconciler(seconds=0.02)
    c = make(rec)
    for i in range(20):
        c.observe("ADDED", body(f"r{i:02d}", observed=1))
        c._set_due(c._entries[f"uid-r{i:02d}"], time.monotonic() - 1)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(c.run(stop))
        while len(rec.order) < 3:
            await asyncio.sleep(0.005)
        await c.submit("ns", "late", "uid-late")
        stop.set()
        await task

    asyncio.run(scenario())
    # One resync may have started while the change was submitted; never more than that.
    assert rec.order.index("late") <= 4
    assert len(rec.order) < 20


def test_resyncs_are_spread_by_jitter_not_all_due_at_once() -> None:
    rec = RecordingReconciler()
    c = make(rec, resync_seconds=100.0, jitter=0.1)
    for i in range(200):
        c.reconcile_now("ns", f"r{i}", f"uid-{i}")
    now = time.monotonic()
    delays = [e.due - now for e in c.entries() if e.due is not None]
    assert len(delays) == 200
    assert min(delays) >= 89.9
    assert max(delays) <= 110.1
    # spread over most of the +-10% window, not one instant
    assert max(delays) - min(delays) > 15


def test_the_interval_stretches_when_a_round_cannot_fit_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = RecordingReconciler()
    c = make(rec, resync_seconds=30.0, workers=4)
    for i in range(1000):
        c.reconcile_now("ns", f"r{i}", f"uid-{i}")
    c.mean_seconds = 0.5  # 1000 x 0.5 s / 4 workers = 125 s per round
    with caplog.at_level(logging.WARNING):
        c._update_interval()
    assert c.interval == pytest.approx(125 / 0.9)
    assert metrics.REGISTRY.get_sample_value("lokifi_storage_resync_interval_seconds") == (
        pytest.approx(125 / 0.9)
    )
    assert "interval stretches from 30s to 139s" in caplog.text
    c.mean_seconds = 0.01
    c._update_interval()
    assert c.interval == 30.0
    assert metrics.REGISTRY.get_sample_value("lokifi_storage_resync_interval_seconds") == 30.0


def test_stretched_interval_is_the_configured_one_while_a_round_fits() -> None:
    assert stretched_interval(30, 100, 0.1, 4) == 30
    assert stretched_interval(30, 1000, 0.1, 4) == 30  # 25 s of work fits in 27 s
    assert stretched_interval(30, 1000, 0.5, 4) == pytest.approx(125 / 0.9)
    assert stretched_interval(300, 0, 2.0, 4) == 300


def test_in_sharded_mode_a_new_generation_from_the_watch_queues_a_change_once() -> None:
    rec = RecordingReconciler()
    c = make(rec)
    c.changes_from_events = True
    c.observe("ADDED", body("a", generation=2, observed=1))
    c.observe("MODIFIED", body("a", generation=2, observed=1))
    c.observe("ADDED", body("b", generation=1, observed=1))
    assert [ch.entry.name for ch in c._changes] == ["a"]


def test_work_for_a_resource_this_process_does_not_own_is_never_started() -> None:
    rec = RecordingReconciler()
    c = make(rec)
    c.changes_from_events = True
    c.owns = lambda namespace, name, uid: name != "theirs"
    c.observe("ADDED", body("mine", generation=1))
    c.observe("ADDED", body("theirs", generation=1))
    # a resync queued before the shard moved away is dropped too
    c._set_due(c._entries["uid-theirs"], time.monotonic() - 1)

    asyncio.run(run_until(c, lambda: len(rec.order) >= 1, timeout=1.0))
    assert rec.order == ["mine"]
    assert not rec.overlap


def test_each_pass_writes_under_the_fence_of_its_resource() -> None:
    """Sharded mode: a pass gets its shard's fence, so losing one shard stops only its work."""
    rec = RecordingReconciler()
    c = make(rec)
    fences = {"a": Fence(), "b": Fence()}
    c.fence_for = lambda namespace, name: fences[name]

    async def scenario() -> None:
        await asyncio.gather(c.submit("ns", "a", "uid-a"), c.submit("ns", "b", "uid-b"))

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(c.run(stop))
        await scenario()
        stop.set()
        await task

    asyncio.run(main())
    assert rec.fences["a"] is fences["a"]
    assert rec.fences["b"] is fences["b"]
