"""The local stack's Kubernetes is a real API server with RBAC enforced.

Later issues test the operator's least-privilege RBAC, which only means something when the
API server really refuses what a role does not grant; these tests prove that first.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from stackfixtures import StackEnv, kubectl

EXPECTED_VERSION = "v1.35.4"


def _server_and_ca(stack: StackEnv) -> tuple[str, ssl.SSLContext]:
    """API server URL and a TLS context trusting its CA, read from the admin kubeconfig."""
    assert stack.kubeconfig is not None
    config = yaml.safe_load(Path(stack.kubeconfig).read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == current["context"]["cluster"])
    context = ssl.create_default_context()
    ca_data = cluster["cluster"].get("certificate-authority-data")
    if ca_data:
        context.load_verify_locations(cadata=base64.b64decode(ca_data).decode())
    else:
        context.load_verify_locations(cafile=cluster["cluster"]["certificate-authority"])
    return cluster["cluster"]["server"], context


def _get_with_token(stack: StackEnv, path: str, token: str) -> tuple[int, str]:
    """GET path with a bearer token in the header (never on a command line)."""
    server, context = _server_and_ca(stack)
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(server + path, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_api_server_answers_readyz(kube_stack: StackEnv) -> None:
    assert kubectl(kube_stack, "get", "--raw", "/readyz").strip() == "ok"


def test_the_api_server_reports_the_pinned_kubernetes_version(kube_stack: StackEnv) -> None:
    version = json.loads(kubectl(kube_stack, "version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == EXPECTED_VERSION


def test_a_service_account_without_bindings_is_refused_listing_secrets(
    kube_stack: StackEnv, k8s_namespace: str
) -> None:
    kubectl(kube_stack, "-n", k8s_namespace, "create", "serviceaccount", "no-rights")
    token = kubectl(
        kube_stack, "-n", k8s_namespace, "create", "token", "no-rights", "--duration=10m"
    ).strip()

    status, body = _get_with_token(kube_stack, f"/api/v1/namespaces/{k8s_namespace}/secrets", token)

    assert status == 403
    assert f"system:serviceaccount:{k8s_namespace}:no-rights" in json.loads(body)["message"]


def test_a_role_binding_grants_the_same_service_account_what_it_names(
    kube_stack: StackEnv, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    kubectl(kube_stack, "-n", ns, "create", "serviceaccount", "reader")
    kubectl(kube_stack, "-n", ns, "create", "role", "secret-reader", "--verb=list",
            "--resource=secrets")  # fmt: skip
    kubectl(kube_stack, "-n", ns, "create", "rolebinding", "reader-reads", "--role=secret-reader",
            f"--serviceaccount={ns}:reader")  # fmt: skip
    token = kubectl(kube_stack, "-n", ns, "create", "token", "reader", "--duration=10m").strip()

    allowed, _ = _get_with_token(kube_stack, f"/api/v1/namespaces/{ns}/secrets", token)
    refused, _ = _get_with_token(kube_stack, f"/api/v1/namespaces/{ns}/configmaps", token)

    assert (allowed, refused) == (200, 403)


def test_deleting_an_owner_garbage_collects_its_dependents(
    kube_stack: StackEnv, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    kubectl(kube_stack, "-n", ns, "create", "configmap", "owner")
    uid = kubectl(kube_stack, "-n", ns, "get", "configmap", "owner", "-o",
                  "jsonpath={.metadata.uid}")  # fmt: skip
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": ns,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ],
        },
    }
    kubectl(kube_stack, "apply", "-f", "-", input_text=json.dumps(child))

    kubectl(kube_stack, "-n", ns, "delete", "configmap", "owner", "--wait=true")
    kubectl(kube_stack, "-n", ns, "wait", "--for=delete", "configmap/child", "--timeout=60s")

    left = kubectl(kube_stack, "-n", ns, "get", "configmaps", "-o", "name")
    assert "configmap/child" not in left.split()
