"""The controller's schedule: when a resource is reconciled again, and what Kopf is told."""

from __future__ import annotations

import time

import kopf
import pytest

from lokifi_storage.clients.errors import ConnectionFailed
from lokifi_storage.domain.requeue import Outcome
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.results import ReconcileResult
from lokifi_storage.runtime.controller import Controller, ControllerConfig, Entry


class ScriptedReconciler:
    """Stands in for ResourceReconciler: returns (or raises) the outcomes it is given."""

    def __init__(self, *outcomes: ReconcileResult | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def reconcile(
        self, namespace: str, name: str, fence: Fence | None = None, known: object = None
    ) -> ReconcileResult:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def forget(self, uid: str, namespace: str, name: str) -> None:
        pass


def controller(*outcomes: ReconcileResult | Exception) -> Controller:
    return Controller(
        ScriptedReconciler(*outcomes),  # type: ignore[arg-type]
        ControllerConfig(resync_seconds=60, first_retry_seconds=2),
    )


def due_in(c: Controller) -> float | None:
    (entry,) = c._entries.values()
    return None if entry.due is None else entry.due - time.monotonic()


def test_a_ready_resource_is_due_again_after_the_resync_period_give_or_take_the_jitter() -> None:
    c = controller(ReconcileResult(outcome=Outcome.READY))
    c.reconcile_now("ns", "a", "uid-a")
    assert 53.9 < (due_in(c) or 0) <= 66


def test_a_not_ready_resource_is_retried_soon_then_later() -> None:
    c = controller(
        ReconcileResult(outcome=Outcome.NOT_READY), ReconcileResult(outcome=Outcome.NOT_READY)
    )
    c.reconcile_now("ns", "a", "uid-a")
    first = due_in(c) or 0
    c.reconcile_now("ns", "a", "uid-a")
    second = due_in(c) or 0
    assert 1 < first <= 2
    assert 3 < second <= 4


def test_an_invalid_spec_is_a_permanent_error_and_never_rescheduled() -> None:
    c = controller(ReconcileResult(outcome=Outcome.INVALID, ready_message="spec.x: bad"))
    with pytest.raises(kopf.PermanentError, match=r"spec\.x: bad"):
        c.reconcile_now("ns", "a", "uid-a")
    assert due_in(c) is None


def test_an_unreachable_api_server_is_a_temporary_error_for_kopf() -> None:
    c = controller(ConnectionFailed("Kubernetes API did not answer"))
    with pytest.raises(kopf.TemporaryError):
        c.reconcile_now("ns", "a", "uid-a")


def test_a_deleted_resource_is_forgotten() -> None:
    c = controller()
    c.observe("ADDED", {"metadata": {"uid": "u", "namespace": "ns", "name": "a"}})
    assert c.known() == 1
    c.observe("DELETED", {"metadata": {"uid": "u", "namespace": "ns", "name": "a"}})
    assert c.known() == 0


def test_a_resync_takes_the_watch_event_only_at_the_version_the_last_pass_left() -> None:
    """The newest watch event replaces the GET of a resync only when its resourceVersion is
    the one the previous pass left; any other (someone's change, or this process's own
    status patch whose event has not arrived yet) means a GET."""
    entry = Entry(namespace="ns", name="lks", uid="u1")
    body = {"metadata": {"name": "lks", "resourceVersion": "41"}, "spec": {}}
    assert Controller._known(entry) is None  # nothing seen yet
    entry.body = body
    assert Controller._known(entry) is None  # no pass yet: nothing to compare with
    entry.left_version = "41"
    assert Controller._known(entry) is body
    entry.left_version = "42"  # the pass patched the status; its event is on its way
    assert Controller._known(entry) is None
    entry.body = {"metadata": {"name": "lks", "resourceVersion": "43"}}  # someone else's
    assert Controller._known(entry) is None
