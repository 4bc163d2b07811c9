"""The Helm chart and the kustomize manifests: lint, render, least-privilege rules, schema of
the values, and the real API server's verdict on every rendered object (a server-side dry run
is the strictest schema check there is: the same validation `kubectl apply` meets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from helmchart import CHART, by_kind, helm, one, render, values_file
from stackfixtures import REPO, StackEnv

RESTRICTED_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


def rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a Role or ClusterRole grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_helm_lint_is_clean_for_default_and_namespaced_values(tmp_path: Path) -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    namespaced = values_file(tmp_path, {"watchNamespaces": ["team-a"], "replicaCount": 2})
    result = helm("lint", "--strict", str(CHART), "--values", str(namespaced))
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_ships_the_generated_crd() -> None:
    shipped = (CHART / "crds" / "lokifistorage.yaml").read_text()
    assert shipped == (REPO / "crds" / "lokifistorage.yaml").read_text(), (
        "charts/lokifi-storage-operator/crds/lokifistorage.yaml differs from crds/: "
        "cp crds/lokifistorage.yaml charts/lokifi-storage-operator/crds/"
    )


def test_default_release_serves_every_namespace_with_only_the_verbs_it_uses(
    tmp_path: Path,
) -> None:
    objs = render(tmp_path)
    granted = rules(one(objs, "ClusterRole"))
    assert granted == {
        ("storage.lokifi.ai", "lokifistorages", "get"),
        ("storage.lokifi.ai", "lokifistorages", "list"),
        ("storage.lokifi.ai", "lokifistorages", "watch"),
        ("storage.lokifi.ai", "lokifistorages", "patch"),
        ("storage.lokifi.ai", "lokifistorages/status", "get"),
        ("storage.lokifi.ai", "lokifistorages/status", "patch"),
        ("storage.lokifi.ai", "lokifistorages/finalizers", "update"),
        ("", "secrets", "get"),
        ("", "secrets", "create"),
        ("", "secrets", "patch"),
        ("", "secrets", "delete"),
        ("batch", "cronjobs", "get"),
        ("batch", "cronjobs", "list"),
        ("batch", "cronjobs", "create"),
        ("batch", "cronjobs", "patch"),
        ("batch", "cronjobs", "delete"),
        ("", "events", "create"),
    }
    lease_role = next(
        r for r in by_kind(objs, "Role") if r["metadata"]["name"].endswith("-leader-election")
    )
    assert lease_role["metadata"]["namespace"] == "lokifi-system"
    named = [r for r in lease_role["rules"] if "get" in r["verbs"]]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["lokifi-storage-operator"],
            "verbs": ["get", "update"],
        }
    ]
    container = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--all-namespaces" in container["args"]


def test_watch_namespaces_grant_roles_only_in_those_namespaces(tmp_path: Path) -> None:
    objs = render(tmp_path, {"watchNamespaces": ["team-a", "team-b"]})
    assert by_kind(objs, "ClusterRole") == []
    assert by_kind(objs, "ClusterRoleBinding") == []
    serving = [r for r in by_kind(objs, "Role") if not r["metadata"]["name"].endswith("-election")]
    assert sorted(r["metadata"]["namespace"] for r in serving) == ["team-a", "team-b"]
    bindings = [
        b
        for b in by_kind(objs, "RoleBinding")
        if b["roleRef"]["name"] == serving[0]["metadata"]["name"]
    ]
    assert {b["subjects"][0]["namespace"] for b in bindings} == {"lokifi-system"}
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_operator_pod_is_restricted_and_probed_on_its_health_endpoint(tmp_path: Path) -> None:
    pod = one(render(tmp_path), "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["resources"]["limits"]["memory"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["LOKIFI_JOB_IMAGE"]["value"] == container["image"]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"replicaCount": -1}, "replicaCount"),
        ({"logLevel": "LOUD"}, "logLevel"),
        ({"replicas": 2}, "replicas"),
        ({"shards": 0}, "shards"),
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "interval"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    tmp_path: Path, values: dict[str, Any], named: str
) -> None:
    result = helm(
        "template", "x", str(CHART), "--values", str(values_file(tmp_path, values)), check=False
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr, result.stderr


def test_service_monitor_is_optional_and_scrapes_the_metrics_service(tmp_path: Path) -> None:
    assert by_kind(render(tmp_path), "ServiceMonitor") == []
    objs = render(tmp_path, {"metrics": {"serviceMonitor": {"enabled": True}}})
    monitor = one(objs, "ServiceMonitor")
    service = one(objs, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    values = values_file(
        tmp_path, {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}}
    )
    result = helm("template", "x", str(CHART), "--values", str(values), check=False)
    assert result.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["default"], "replicaCount": 2}])
def test_api_server_accepts_every_rendered_object_under_restricted_pod_security(
    kube_stack: StackEnv, k8s_namespace: str, tmp_path: Path, values: dict[str, Any]
) -> None:
    labels = [f"{k}={v}" for k, v in RESTRICTED_LABELS.items()]
    subprocess.run(
        kube_stack.kubectl_argv("label", "namespace", k8s_namespace, *labels), check=True
    )
    objs = render(tmp_path, values, release="lokifi", namespace=k8s_namespace, crds=False)
    result = subprocess.run(
        kube_stack.kubectl_argv("apply", "--dry-run=server", "--server-side", "-f", "-"),
        input=yaml.safe_dump_all(objs),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr
    assert result.stdout.count("(server dry run)") == len(objs)


def kustomize(stack: StackEnv, path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        stack.kubectl_argv("kustomize", str(path)), capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


@pytest.mark.e2e
def test_kustomize_base_renders_what_the_chart_renders_by_default(
    kube_stack: StackEnv, tmp_path: Path
) -> None:
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render_manifests.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from render_manifests import without_helm_labels
    finally:
        sys.path.pop(0)
    chart = {key(o): without_helm_labels(o) for o in render(tmp_path)}
    base = {key(o): o for o in kustomize(kube_stack, REPO / "manifests" / "base")}
    namespace = base.pop(("Namespace", "", "lokifi-system"))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert base == chart


@pytest.mark.e2e
def test_example_overlay_pins_the_image_and_runs_a_standby(kube_stack: StackEnv) -> None:
    objs = kustomize(kube_stack, REPO / "manifests" / "overlays" / "example")
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/lokifi/lokifi-storage-operator:0.1.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LOKIFI_JOB_IMAGE"] == container["image"]
    assert one(objs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_shards_value_runs_sharded_replicas_that_may_update_only_their_shard_leases(
    tmp_path: Path,
) -> None:
    default = one(render(tmp_path), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert not any(arg.startswith("--shards") for arg in default["args"])
    objs = render(tmp_path, {"shards": 3, "replicaCount": 3})
    container = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--shards=3" in container["args"]
    lease_role = next(
        r for r in by_kind(objs, "Role") if r["metadata"]["name"].endswith("-leader-election")
    )
    named = next(r for r in lease_role["rules"] if "get" in r["verbs"])
    assert named["resourceNames"] == [
        "lokifi-storage-operator",
        "lokifi-storage-operator-shard-0",
        "lokifi-storage-operator-shard-1",
        "lokifi-storage-operator-shard-2",
    ]
