"""Two operator processes never reconcile at once: the second stands by on the Lease, writes
nothing, and takes over when the first one stops."""

from __future__ import annotations

import time

from e2e_full import FullExample
from e2e_operator import OperatorFactory, conditions, events, get_json, wait_for
from e2e_proxy import counting_proxy

from lokifi_storage.api import conditions as types


def converged(full_example: FullExample, schedule: str) -> bool:
    obj = full_example.get()
    cron = get_json(
        full_example.stack, full_example.namespace, "cronjob", "lokifi-prod-backup-daily"
    )
    return bool(
        obj
        and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        and conditions(obj)[types.READY]["status"] == "True"
        and cron
        and cron["spec"]["schedule"] == schedule
    )


def role(process: object) -> str | None:
    health = process.health()  # type: ignore[attr-defined]
    return None if health is None else str(health["role"])


def test_second_operator_stays_passive_and_takes_over_when_the_first_stops(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    full_example.apply()
    first = start_operator(ns, standalone=False)
    wait_for(lambda: role(first) == "leader", 30, "the first operator to lead")
    assert stack.kubeconfig is not None

    with counting_proxy(stack.kubeconfig) as proxy:
        second = start_operator(ns, standalone=False, kubeconfig=proxy.kubeconfig)
        wait_for(lambda: role(second) == "standby", 30, "the second operator to stand by")
        full_example.wait_ready()
        full_example.apply(daily_schedule="15 2 * * *")
        wait_for(lambda: converged(full_example, "15 2 * * *"), 60, "the first change")
        time.sleep(3)
        assert proxy.writes() == [], [f"{w.method} {w.path}" for w in proxy.writes()]
        assert role(second) == "standby"
        lease = get_json(stack, ns, "lease", "lokifi-storage-operator")
        assert lease is not None
        leader = lease["spec"]["holderIdentity"]
        instances = {e.get("reportingInstance") for e in events(stack, ns, "lokifi-prod")}
        assert instances == {leader}
        assert "standing by" in second.log()

        first.stop()
        wait_for(lambda: role(second) == "leader", 30, "the second operator to take over")
        lease = get_json(stack, ns, "lease", "lokifi-storage-operator")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] not in ("", leader)
        full_example.apply(daily_schedule="45 2 * * *")
        wait_for(lambda: converged(full_example, "45 2 * * *"), 60, "the change after take-over")
        assert proxy.writes(path_contains="/cronjobs/lokifi-prod-backup-daily")
        second.stop()


def test_standby_takes_over_when_the_leader_dies_without_releasing_the_lease(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    ns = full_example.namespace
    full_example.create_secrets()
    full_example.apply()
    lease = ["--lease-seconds", "6"]
    first = start_operator(ns, standalone=False, extra=lease)
    wait_for(lambda: role(first) == "leader", 30, "the first operator to lead")
    second = start_operator(ns, standalone=False, extra=lease)
    wait_for(lambda: role(second) == "standby", 30, "the second operator to stand by")
    full_example.wait_ready("2m")

    assert first.proc is not None
    first.proc.kill()  # SIGKILL: no chance to release the Lease
    first.proc.wait(timeout=10)
    killed = time.monotonic()
    wait_for(lambda: role(second) == "leader", 60, "the standby to take over")
    assert time.monotonic() - killed >= 3  # it waited for the Lease to expire
    full_example.apply(daily_schedule="45 2 * * *")
    wait_for(lambda: converged(full_example, "45 2 * * *"), 60, "the change after take-over")
