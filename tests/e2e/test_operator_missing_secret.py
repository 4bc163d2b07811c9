"""A Secret (or a key) the spec names is missing: the condition names it, the other parts carry
on, and the resource becomes Ready soon after the Secret is created, without any spec change."""

from __future__ import annotations

from e2e_full import FullExample
from e2e_operator import OperatorFactory, conditions, create_secret, events, wait_for

from lokifi_storage.api import conditions as types


def test_missing_primary_secret_is_named_and_picked_up_once_created(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    full_example.create_secrets(skip=["lokifi-db"])
    full_example.apply()
    start_operator(full_example.namespace)

    conds = wait_for(
        lambda: (c := conditions(full_example.get())).get(types.POSTGRES_READY) and c,
        90,
        "PostgresReady to be reported",
    )
    postgres = conds[types.POSTGRES_READY]
    assert (postgres["status"], postgres["reason"]) == ("False", "SecretNotFound")
    assert "'lokifi-db'" in postgres["message"]
    assert full_example.namespace in postgres["message"]
    assert conds[types.READY]["status"] == "False"
    assert conds[types.STALLED]["status"] == "True"
    assert "lokifi-db" in conds[types.STALLED]["message"]
    assert conds[types.REDIS_READY]["status"] == "True"  # the other parts carry on
    warnings = [
        e
        for e in events(full_example.stack, full_example.namespace, "lokifi-prod")
        if e["type"] == "Warning"
    ]
    assert any("'lokifi-db'" in e["message"] and e["reason"] == "SecretNotFound" for e in warnings)

    create_secret(
        full_example.stack,
        full_example.namespace,
        "lokifi-db",
        url=full_example.database.primary_url,
    )
    wait_for(
        lambda: conditions(full_example.get()).get(types.READY, {}).get("status") == "True",
        90,
        "Ready after the Secret was created",
    )


def test_missing_key_in_an_existing_secret_is_named(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    full_example.create_secrets(skip=["lokifi-redis"])
    create_secret(full_example.stack, full_example.namespace, "lokifi-redis", passwd="wrong-key")
    full_example.apply()
    start_operator(full_example.namespace)

    redis = wait_for(
        lambda: conditions(full_example.get()).get(types.REDIS_READY),
        90,
        "RedisReady to be reported",
    )
    assert (redis["status"], redis["reason"]) == ("False", "SecretKeyNotFound")
    assert "'lokifi-redis'" in redis["message"]
    assert "'password'" in redis["message"]
    assert "wrong-key" not in redis["message"]

    create_secret(
        full_example.stack,
        full_example.namespace,
        "lokifi-redis",
        password=full_example.stack.redis_password,
    )
    wait_for(
        lambda: conditions(full_example.get()).get(types.READY, {}).get("status") == "True",
        90,
        "Ready after the key was added",
    )
