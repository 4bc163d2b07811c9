"""A resync that finds nothing to change sends no write to the API server at all.

The operator talks to the real API server through a counting proxy; once the resource is
Ready, several resyncs run (the log says so) while the proxy sees zero POST/PUT/PATCH/DELETE
and the resource's resourceVersion does not move: neither the operator nor Kopf's bookkeeping
writes anything. Kopf's bookkeeping does not write on a change either: the resource itself is
never PATCHed for it, only its status by the reconciler.
"""

from __future__ import annotations

import time

from e2e_full import FullExample
from e2e_operator import OperatorFactory, get_json, kubectl, render, wait_for
from e2e_proxy import Request, counting_proxy

RESYNC = 2.0


def test_noop_resyncs_send_no_write_and_leave_the_resource_version_alone(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    manifest = render("noop", "lokifistorage.yaml", **full_example.values)
    kubectl(stack, "apply", "-f", "-", input_text=manifest)
    assert stack.kubeconfig is not None
    with counting_proxy(stack.kubeconfig) as proxy:
        operator = start_operator(ns, resync_seconds=RESYNC, kubeconfig=proxy.kubeconfig)
        kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/steady", "--timeout=120s")
        assert proxy.writes(path_contains="/lokifistorages/steady/status")  # it did write once
        time.sleep(2 * RESYNC)  # let the first pass's trailing writes (Kopf's diffbase) land

        before = get_json(stack, ns, "lks", "steady")
        assert before is not None
        start = time.monotonic()
        reconciles_before = operator.log().count("reconciled ")
        wait_for(
            lambda: operator.log().count("reconciled ") >= reconciles_before + 3,
            30,
            "three resyncs",
        )
        writes = proxy.writes(since=start)
        after = get_json(stack, ns, "lks", "steady")
        assert after is not None
        operator.stop()

    assert writes == [], [f"{w.method} {w.path}" for w in writes]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "kopf" not in (after.get("status") or {})
    assert operator.log().count("status unchanged") >= 3


def test_restarted_operator_resumes_without_writing(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    manifest = render("noop", "lokifistorage.yaml", **full_example.values)
    kubectl(stack, "apply", "-f", "-", input_text=manifest)
    first = start_operator(ns, resync_seconds=300)
    kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/steady", "--timeout=120s")
    time.sleep(2)
    first.stop()
    before = get_json(stack, ns, "lks", "steady")
    assert before is not None

    assert stack.kubeconfig is not None
    with counting_proxy(stack.kubeconfig) as proxy:
        second = start_operator(ns, resync_seconds=300, kubeconfig=proxy.kubeconfig)
        wait_for(lambda: "reconciled " in second.log(), 60, "the resume reconcile")
        time.sleep(2)
        second.stop()
        writes = proxy.writes()
    after = get_json(stack, ns, "lks", "steady")
    assert after is not None
    assert writes == [], [f"{w.method} {w.path}" for w in writes]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_kopf_writes_nothing_to_the_resource_on_create_or_on_a_spec_change(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    """Kopf's last-handled spec is kept in the operator's memory: neither the first pass nor
    the pass after a spec change PATCHes the resource itself (its status only), and the change
    is still told apart from the status patches and handled. The first pass creates the
    connection Secret without a GET before it."""
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    manifest = render("noop", "lokifistorage.yaml", **full_example.values)
    kubectl(stack, "apply", "-f", "-", input_text=manifest)
    assert stack.kubeconfig is not None
    with counting_proxy(stack.kubeconfig) as proxy:
        operator = start_operator(ns, resync_seconds=300, kubeconfig=proxy.kubeconfig)
        kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/steady", "--timeout=120s")
        time.sleep(2)  # Kopf's bookkeeping would land right after the handler returned
        first = proxy.writes(path_contains="/lokifistorages/steady")
        secret = [
            r.method
            for r in proxy.requests
            if r.path.endswith("/secrets/steady-conn")
            or (r.method == "POST" and r.path.endswith("/secrets"))
        ]
        kubectl(
            stack,
            "-n",
            ns,
            "patch",
            "lks/steady",
            "--type=merge",
            "-p",
            '{"spec": {"maintenance": {"vacuum": {"schedule": "0 6 * * 0"}}}}',
        )
        since = time.monotonic()
        kubectl(
            stack,
            "-n",
            ns,
            "wait",
            "--for=jsonpath={.status.observedGeneration}=2",
            "lks/steady",
            "--timeout=120s",
        )
        time.sleep(2)
        second = proxy.writes(since=since)
        operator.stop()

    def on_the_resource(writes: list[Request]) -> list[str]:
        return [f"{w.method} {w.path}" for w in writes if not w.path.endswith("/status")]

    assert [w for w in first if w.path.endswith("/status")]  # the status was written
    assert secret == ["POST"]  # a new resource's connection Secret: created, not read first
    assert on_the_resource(first) == []
    assert on_the_resource([w for w in second if "/lokifistorages/" in w.path]) == []
    assert [w for w in second if "/cronjobs/" in w.path], "the changed schedule was applied"


def test_resyncs_read_the_resource_from_the_watch_until_someone_else_changes_it(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    """A resync takes the resource from the newest watch event when its resourceVersion is the
    one the previous pass left: no GET of it. A status key changed behind the operator's back
    moves the resourceVersion: the next resync reads the resource and puts the key back."""
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    manifest = render("noop", "lokifistorage.yaml", **full_example.values)
    kubectl(stack, "apply", "-f", "-", input_text=manifest)
    assert stack.kubeconfig is not None
    with counting_proxy(stack.kubeconfig) as proxy:
        operator = start_operator(ns, resync_seconds=RESYNC, kubeconfig=proxy.kubeconfig)
        kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/steady", "--timeout=120s")
        passes = operator.log().count("reconciled ")
        wait_for(lambda: operator.log().count("reconciled ") >= passes + 1, 30, "a resync")
        start = time.monotonic()
        passes = operator.log().count("reconciled ")
        wait_for(lambda: operator.log().count("reconciled ") >= passes + 3, 30, "three resyncs")
        steady = [r for r in proxy.requests if r.at >= start]

        kubectl(
            stack, "-n", ns, "patch", "lks/steady", "--subresource=status", "--type=merge",
            "-p", '{"status": {"connectionSecret": null}}',
        )  # fmt: skip
        changed = time.monotonic()
        wait_for(
            lambda: (
                (get_json(stack, ns, "lks", "steady") or {})
                .get("status", {})
                .get("connectionSecret")
            ),
            30,
            "the status key put back",
        )
        after = [r for r in proxy.requests if r.at >= changed]
        operator.stop()

    def reads_of_the_resource(requests: list[Request]) -> list[str]:
        return [
            f"{r.method} {r.path}"
            for r in requests
            if r.method == "GET" and r.path.endswith("/lokifistorages/steady")
        ]

    assert [r for r in steady if r.method == "GET" and r.path.endswith("/secrets/lokifi-db")]
    assert reads_of_the_resource(steady) == []
    assert reads_of_the_resource(after), "the resync after the change read the resource"
    assert [r for r in after if r.method == "PATCH" and r.path.endswith("/steady/status")]
