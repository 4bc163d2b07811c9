"""What a new resource's first pass asks the API server: no LIST of CronJobs when its spec,
which never changed, declares none (none can exist), while every later pass still LISTs them;
and a resource whose spec did change before any pass wrote its status still has the CronJob an
earlier pass made found and deleted. Through the counting proxy, against the real API server
and primary."""

from __future__ import annotations

import time

import psycopg
from e2e_full import FullExample
from e2e_operator import OperatorFactory, kubectl, wait_for
from e2e_proxy import counting_proxy

RESYNC = 2.0

MANIFEST = """\
apiVersion: storage.lokifi.ai/v1alpha1
kind: LokifiStorage
metadata: {{name: fresh, namespace: {ns}}}
spec:
  postgres:
    primary: {{secretRef: {{name: lokifi-db, key: url}}}}
    connectionSecret: {{name: fresh-conn}}
    tables:
      - name: ai_messages
        partitionBy: {{column: created_at, interval: month}}
        premake: 2
{maintenance}"""

VACUUM = """\
  maintenance:
    vacuum: {schedule: "0 5 * * 0", tables: [ai_threads]}
"""


def _cronjobs(full_example: FullExample) -> list[str]:
    out = kubectl(
        full_example.stack,
        "-n",
        full_example.namespace,
        "get",
        "cronjobs",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    )
    return out.split()


def test_a_new_resource_without_cronjobs_does_not_list_them_until_its_status_is_written(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    kubectl(stack, "apply", "-f", "-", input_text=MANIFEST.format(ns=ns, maintenance=""))
    assert stack.kubeconfig is not None
    with counting_proxy(stack.kubeconfig) as proxy:
        operator = start_operator(ns, resync_seconds=RESYNC, kubeconfig=proxy.kubeconfig)
        kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/fresh", "--timeout=120s")
        passes = operator.log().count("reconciled ")
        wait_for(lambda: operator.log().count("reconciled ") >= passes + 2, 60, "two resyncs")
        requests = list(proxy.requests)
        operator.stop()

    first_status = min(
        r.at
        for r in requests
        if r.method == "PATCH" and r.path.endswith("/lokifistorages/fresh/status")
    )
    lists = [r for r in requests if r.method == "GET" and r.path.endswith("/cronjobs")]
    assert [r for r in lists if r.at < first_status] == [], "the first pass listed CronJobs"
    assert [r for r in lists if r.at > first_status], "the resyncs list them"
    assert _cronjobs(full_example) == []


def test_a_cronjob_left_before_the_first_status_write_is_deleted_after_a_spec_change(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    """A pass made the vacuum CronJob and its status never landed (here: removed by hand);
    then the spec dropped vacuum. That first pass is at generation 2, so it LISTs."""
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    kubectl(stack, "apply", "-f", "-", input_text=MANIFEST.format(ns=ns, maintenance=VACUUM))
    operator = start_operator(ns, resync_seconds=300)
    kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/fresh", "--timeout=120s")
    operator.stop()
    assert _cronjobs(full_example) == ["fresh-vacuum"]

    kubectl(
        stack, "-n", ns, "patch", "lks/fresh", "--subresource=status", "--type=merge",
        "-p", '{"status": null}',
    )  # fmt: skip
    kubectl(
        stack, "-n", ns, "patch", "lks/fresh", "--type=json",
        "-p", '[{"op": "remove", "path": "/spec/maintenance"}]',
    )  # fmt: skip
    operator = start_operator(ns, resync_seconds=300)
    _wait_for_generation_2(full_example)
    time.sleep(1)
    operator.stop()
    assert _cronjobs(full_example) == []


def test_a_table_dropped_from_the_spec_is_released_by_the_pass_after_the_change(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    """Generation 1 looks for no claim to release (its spec never named another table); the
    pass of generation 2 does, and releases the claim on the table the spec no longer names."""
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    kubectl(stack, "apply", "-f", "-", input_text=MANIFEST.format(ns=ns, maintenance=""))
    operator = start_operator(ns, resync_seconds=300)
    kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/fresh", "--timeout=120s")
    assert "managed by " + ns + "/fresh" in _comment(full_example, "ai_messages")

    kubectl(
        stack, "-n", ns, "patch", "lks/fresh", "--type=merge",
        "-p", '{"spec": {"postgres": {"tables": [{"name": "ai_threads"}]}}}',
    )  # fmt: skip
    _wait_for_generation_2(full_example)
    operator.stop()
    assert "managed by" not in _comment(full_example, "ai_messages")
    assert "managed by " + ns + "/fresh" in _comment(full_example, "ai_threads")


def _wait_for_generation_2(full_example: FullExample) -> None:
    """Until the operator has reconciled the spec change (the status records generation 2)."""
    kubectl(
        full_example.stack,
        "-n",
        full_example.namespace,
        "wait",
        "--for=jsonpath={.status.observedGeneration}=2",
        "lks/fresh",
        "--timeout=120s",
    )


def _comment(full_example: FullExample, table: str) -> str:
    with psycopg.connect(full_example.database) as conn:
        row = conn.execute("SELECT obj_description(%s::regclass)", (table,)).fetchone()
    return str(row[0] if row and row[0] else "")
