"""Credentials read from Secrets reach only the connection Secret: never the resource's status or
annotations, an Event, a CronJob, the Lease, or the operator's log."""

from __future__ import annotations

import json
import subprocess
import time
from urllib.parse import urlsplit

from e2e_full import FullExample
from e2e_operator import OperatorFactory, conditions, get_json, kubectl, wait_for


def test_no_credential_appears_anywhere_but_the_connection_secret(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    operator = full_example.run_ready(start_operator, standalone=False)
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


def test_at_debug_no_credential_reaches_the_log_annotations_or_jobs(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    """An endpoint carrying user:password is refused at admission (without quoting it); then,
    with the operator at DEBUG (every library logging what it is handed) and the database
    parts failing on a wrong password, neither password, nor the S3 secret key, nor any
    Secret value is in the operator's log, the resource (Kopf's annotations included), its
    Events, CronJobs or Lease."""
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    s3 = urlsplit(stack.s3_endpoint)
    with_userinfo = (
        f"{s3.scheme}://{stack.aws_access_key_id}:{stack.aws_secret_access_key}@{s3.netloc}"
    )
    refused = subprocess.run(
        stack.kubectl_argv("apply", "-f", "-"),
        input=full_example.manifest(s3_endpoint=with_userinfo),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0, "an endpoint with user:password@ was admitted"
    assert "spec.objectStorage.endpoint" in refused.stderr, refused.stderr
    assert stack.aws_secret_access_key not in refused.stderr

    good = urlsplit(full_example.database.primary_url)
    wrong_password = "Wr0ng-pa55word-for-the-test"
    wrong_url = full_example.database.primary_url.replace(
        f":{good.password}@", f":{wrong_password}@"
    )
    assert wrong_url != full_example.database.primary_url
    kubectl(
        stack, "-n", ns, "patch", "secret", "lokifi-db", "--type=merge",
        "-p", json.dumps({"stringData": {"url": wrong_url}}),
    )  # fmt: skip
    full_example.apply()
    operator = start_operator(ns, resync_seconds=2, extra=["--log-level", "DEBUG"])

    def failed() -> bool:
        cond = conditions(full_example.get()).get("PostgresReady") or {}
        return cond.get("reason") == "AuthenticationFailed"

    wait_for(failed, 90, "PostgresReady=False/AuthenticationFailed")
    time.sleep(5)  # a couple more failing resyncs in the log
    log = operator.log()
    assert " DEBUG " in log, "the operator did not log at DEBUG"

    needles = {
        "wrong database password": wrong_password,
        "database password": good.password or "",
        "redis password": stack.redis_password,
        "S3 secret key": stack.aws_secret_access_key,
    }
    assert all(needles.values())
    haystacks = {
        "resource": json.dumps(get_json(stack, ns, "lks", "lokifi-prod")),
        "events": json.dumps(get_json(stack, ns, "events")),
        "cronjobs": json.dumps(get_json(stack, ns, "cronjobs")),
        "leases": json.dumps(get_json(stack, ns, "leases")),
        "operator log": log,
    }
    for where, text in haystacks.items():
        for what, value in needles.items():
            assert value not in text, f"{what} found in {where}"
