"""Credentials read from Secrets reach only the connection Secret: never the resource's status or
annotations, an Event, a CronJob, the Lease, or the operator's log."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from e2e_full import FullExample
from e2e_operator import OperatorFactory, get_json, kubectl


def test_no_credential_appears_anywhere_but_the_connection_secret(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    full_example.apply()
    operator = start_operator(ns, standalone=False)
    kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/lokifi-prod", "--timeout=120s")
    # Break a part too, so failure messages are in the haystack as well.
    kubectl(
        stack, "-n", ns, "patch", "secret", "lokifi-redis", "--type=merge",
        "-p", json.dumps({"stringData": {"password": "not-the-password"}}),
    )  # fmt: skip
    kubectl(
        stack, "-n", ns, "wait", "--for=condition=Ready=False", "lks/lokifi-prod", "--timeout=60s"
    )

    password = urlsplit(full_example.database.primary_url).password
    assert password
    needles = {
        "database password": password,
        "redis password": stack.redis_password,
        "wrong redis password": "not-the-password",
        "S3 secret key": stack.aws_secret_access_key,
    }
    haystacks = {
        "resource": json.dumps(get_json(stack, ns, "lks", "lokifi-prod")),
        "events": json.dumps(get_json(stack, ns, "events")),
        "cronjobs": json.dumps(get_json(stack, ns, "cronjobs")),
        "leases": json.dumps(get_json(stack, ns, "leases")),
        "described": kubectl(stack, "-n", ns, "describe", "lks", "lokifi-prod"),
        "operator log": operator.log(),
    }
    for where, text in haystacks.items():
        for what, value in needles.items():
            assert value not in text, f"{what} found in {where}"
