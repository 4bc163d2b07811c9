"""Change the spec of a Ready resource (premake, a schedule, a Redis setting): the operator
converges to the new spec, writing only what changed, and reports the new generation."""

from __future__ import annotations

from e2e_full import FullExample, expected_months, partitions
from e2e_operator import (
    OperatorFactory,
    conditions,
    get_json,
    kubectl,
    said_actions,
    wait_for,
)

from lokifi_storage.api import conditions as types


def converged(full_example: FullExample, generation: int) -> bool:
    obj = full_example.get()
    if obj is None or obj["metadata"]["generation"] != generation:
        return False
    ready = conditions(obj).get(types.READY, {})
    return obj["status"].get("observedGeneration") == generation and ready.get("status") == "True"


def test_changed_premake_schedule_and_redis_setting_converge(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.run_ready(start_operator)
    first = full_example.get()
    assert first is not None
    weekly_rv = get_json(stack, ns, "cronjob", "lokifi-prod-backup-weekly")["metadata"][  # type: ignore[index]
        "resourceVersion"
    ]

    full_example.apply(daily_schedule="30 1 * * *", maxmemory="1gb", premake=5)
    generation = first["metadata"]["generation"] + 1
    wait_for(lambda: converged(full_example, generation), 90, f"generation {generation} Ready")

    daily = get_json(stack, ns, "cronjob", "lokifi-prod-backup-daily")
    assert daily is not None
    assert daily["spec"]["schedule"] == "30 1 * * *"
    weekly = get_json(stack, ns, "cronjob", "lokifi-prod-backup-weekly")
    assert weekly is not None
    assert weekly["metadata"]["resourceVersion"] == weekly_rv  # unchanged: not written
    cluster = stack.redis_cluster()
    try:
        values = cluster.config_get("maxmemory", target_nodes=cluster.ALL_NODES)
    finally:
        cluster.close()
    assert {v["maxmemory"] for v in values.values()} == {str(1024**3)}, values
    assert expected_months(5) <= partitions(full_example, "ai_messages")
    actions = said_actions(stack, ns, "lokifi-prod")
    assert any(a.startswith("updated CronJob lokifi-prod-backup-daily") for a in actions), actions
    assert not any(a.startswith("updated CronJob lokifi-prod-backup-weekly") for a in actions)


def test_removed_schedule_deletes_its_cronjob(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.run_ready(start_operator)
    assert get_json(stack, ns, "cronjob", "lokifi-prod-backup-monthly") is not None

    kubectl(
        stack,
        "-n",
        ns,
        "patch",
        "lks",
        "lokifi-prod",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/spec/backups/schedules/2"}]',
    )
    wait_for(
        lambda: get_json(stack, ns, "cronjob", "lokifi-prod-backup-monthly") is None,
        60,
        "the monthly CronJob to be deleted",
    )
    remaining = get_json(stack, ns, "cronjobs")
    assert remaining is not None
    assert {c["metadata"]["name"] for c in remaining["items"]} == {
        "lokifi-prod-backup-daily",
        "lokifi-prod-backup-weekly",
        "lokifi-prod-vacuum",
        "lokifi-prod-partitions-compress",
        "lokifi-prod-partitions-export",
    }


def test_hand_edited_cronjob_is_repaired_by_the_next_resync(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.run_ready(start_operator, resync_seconds=3)

    kubectl(
        stack,
        "-n",
        ns,
        "patch",
        "cronjob",
        "lokifi-prod-vacuum",
        "--type=merge",
        "-p",
        '{"spec": {"schedule": "* * * * *", "concurrencyPolicy": "Allow"}}',
    )
    wait_for(
        lambda: (
            (c := get_json(stack, ns, "cronjob", "lokifi-prod-vacuum"))
            and c["spec"]["schedule"] == "0 5 * * 0"
            and c["spec"]["concurrencyPolicy"] == "Forbid"
        ),
        60,
        "the vacuum CronJob to be repaired",
    )
