"""A spec that passed admission but that the operator's models refuse (the API server checks a
cron expression's shape, the operator its values): Stalled/InvalidSpec with the field and the
reason, no retry storm, and back to Ready once the spec is fixed."""

from __future__ import annotations

import time

from e2e_full import FullExample
from e2e_operator import OperatorFactory, conditions, events, wait_for
from e2e_proxy import counting_proxy

from lokifi_storage.api import conditions as types


def test_invalid_spec_stalls_without_retrying_until_fixed(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    full_example.apply(daily_schedule="99 2 * * *")  # minute 99: right shape, impossible value
    assert stack.kubeconfig is not None
    with counting_proxy(stack.kubeconfig) as proxy:
        operator = start_operator(ns, resync_seconds=1, kubeconfig=proxy.kubeconfig)
        conds = wait_for(
            lambda: (c := conditions(full_example.get())).get(types.STALLED) and c,
            60,
            "Stalled to be reported",
        )
        stalled = conds[types.STALLED]
        assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
        assert "spec.backups.schedules.0.schedule" in stalled["message"]
        assert (conds[types.READY]["status"], conds[types.READY]["reason"]) == (
            "False",
            "InvalidSpec",
        )
        time.sleep(2)
        settled = time.monotonic()
        time.sleep(6)  # six resync periods
        assert proxy.writes(since=settled) == []
        assert operator.log().count("reconciled ") == 1
        warnings = [e for e in events(stack, ns, "lokifi-prod") if e["type"] == "Warning"]
        assert [e["reason"] for e in warnings] == ["InvalidSpec"]

        full_example.apply(daily_schedule="0 2 * * *")
        wait_for(
            lambda: conditions(full_example.get())[types.READY]["status"] == "True",
            60,
            "Ready once the spec is fixed",
        )
        operator.stop()
