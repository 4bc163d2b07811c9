"""The operator runs with nothing but the Helm chart's ServiceAccount and RBAC, against the
RBAC-enabled API server of the local stack: a token is requested for the chart's
ServiceAccount, the operator gets a kubeconfig with only that token, and it is started with the
arguments of the chart's Deployment. The full example must reach Ready; with one rule taken
out of the chart's role it must not, and the resource must say which permission is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_full import FullExample
from e2e_operator import OperatorProcess, conditions, kubectl, wait_for

from helmchart import by_kind, one, render
from lokifi_storage.api import conditions as types
from stackfixtures import StackEnv, unique_name

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


class ChartRelease:
    """The chart's ServiceAccount and RBAC objects applied in a release namespace of their own."""

    def __init__(self, stack: StackEnv, tmp_path: Path, serve: str, release_ns: str) -> None:
        self.stack = stack
        self.tmp_path = tmp_path
        self.serve = serve
        self.release_ns = release_ns
        self.release = release_ns
        self.objects: list[dict[str, Any]] = []

    def install(self, values: dict[str, Any], *, drop: tuple[str, str] | None = None) -> None:
        """Apply the chart's RBAC objects; `drop=(resource, verb)` takes one verb out first."""
        objs = render(
            self.tmp_path, values, release=self.release, namespace=self.release_ns, crds=False
        )
        self.deployment = one(objs, "Deployment")
        self.objects = [o for o in objs if o["kind"] in RBAC_KINDS]
        if drop is not None:
            for role in self.objects:
                for rule in role.get("rules", []):
                    if drop[0] in rule["resources"] and drop[1] in rule["verbs"]:
                        rule["verbs"].remove(drop[1])
                if "rules" in role:
                    role["rules"] = [r for r in role["rules"] if r["verbs"]]
        kubectl(self.stack, "apply", "-f", "-", input_text=yaml.safe_dump_all(self.objects))

    def kubeconfig(self) -> Path:
        """A kubeconfig holding only a fresh token of the chart's ServiceAccount."""
        account = one(self.objects, "ServiceAccount")["metadata"]["name"]
        token = kubectl(
            self.stack, "-n", self.release_ns, "create", "token", account, "--duration=1h"
        ).strip()
        assert self.stack.kubeconfig is not None
        admin = yaml.safe_load(Path(self.stack.kubeconfig).read_text())
        cluster = admin["clusters"][0]["cluster"]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": cluster}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}],
            "current-context": "sa",
        }
        path = self.tmp_path / "sa.kubeconfig"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config))
        return path

    def operator_args(self) -> list[str]:
        """The chart's container args, served namespace narrowed to the test's, faster resync."""
        container = self.deployment["spec"]["template"]["spec"]["containers"][0]
        args: list[str] = container["args"]
        assert args[0] == "run"
        kept = [
            a
            for a in args[1:]
            if not a.startswith(("--health-port", "--metrics-port", "--resync-seconds"))
        ]
        kept = [f"--namespace={self.serve}" if a == "--all-namespaces" else a for a in kept]
        return [*kept, "--resync-seconds=5"]

    def uninstall(self) -> None:
        cluster_scoped = [o for o in self.objects if o["kind"].startswith("Cluster")]
        for obj in cluster_scoped:
            kubectl(
                self.stack,
                "delete",
                obj["kind"].lower(),
                obj["metadata"]["name"],
                "--ignore-not-found",
                check=False,
            )
        kubectl(self.stack, "delete", "namespace", self.release_ns, "--wait=false", check=False)


@pytest.fixture
def chart_release(
    full_example: FullExample, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ChartRelease]:
    release_ns = unique_name(f"op-{request.node.name}", 50, sep="-")
    kubectl(full_example.stack, "create", "namespace", release_ns)
    release = ChartRelease(full_example.stack, tmp_path, full_example.namespace, release_ns)
    yield release
    release.uninstall()


def start_as_service_account(
    release: ChartRelease, tmp_path: Path, started: list[OperatorProcess]
) -> OperatorProcess:
    process = OperatorProcess(
        release.kubeconfig(),
        release.operator_args(),
        tmp_path / "operator-sa.log",
        env={
            "LOKIFI_JOB_IMAGE": "registry.example/lokifi-storage:e2e",
            "POD_NAMESPACE": release.release_ns,
            "POD_NAME": "operator-0",
        },
    )
    started.append(process)
    return process.start()


@pytest.fixture
def started(crd: str) -> Iterator[list[OperatorProcess]]:
    processes: list[OperatorProcess] = []
    yield processes
    for process in processes:
        process.stop()
        print(f"--- {process.log_path.name} ---\n{process.log()[-6000:]}")


@pytest.mark.parametrize(
    "values", [{}, {"watchNamespaces": ["$serve"]}], ids=["clusterrole", "namespaced-role"]
)
def test_full_example_becomes_ready_with_only_the_charts_service_account(
    full_example: FullExample,
    chart_release: ChartRelease,
    started: list[OperatorProcess],
    tmp_path: Path,
    values: dict[str, Any],
) -> None:
    if "watchNamespaces" in values:
        values = {"watchNamespaces": [full_example.namespace]}
    chart_release.install(values)
    roles = by_kind(chart_release.objects, "Role") + by_kind(chart_release.objects, "ClusterRole")
    assert not any("*" in r["verbs"] for role in roles for r in role["rules"])
    full_example.create_secrets()
    full_example.apply()
    operator = start_as_service_account(chart_release, tmp_path, started)

    kubectl(
        full_example.stack,
        "-n",
        full_example.namespace,
        "wait",
        "--for=condition=Ready",
        f"lks/{full_example.name}",
        "--timeout=120s",
    )
    assert "Forbidden" not in operator.log()
    assert "forbidden" not in operator.log()
    # The leader-election Lease was taken in the release namespace with the chart's Role.
    lease = kubectl(
        full_example.stack,
        "-n",
        chart_release.release_ns,
        "get",
        "lease",
        "lokifi-storage-operator",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    )
    assert lease == "operator-0"
    cronjobs = kubectl(
        full_example.stack, "-n", full_example.namespace, "get", "cronjobs", "-o", "name"
    )
    assert cronjobs.strip()


@pytest.mark.parametrize(
    ("drop", "kind", "said"),
    [
        (("cronjobs", "create"), types.BACKUPS_READY, 'cannot create resource "cronjobs"'),
        # Owned objects carry blockOwnerDeletion, which OwnerReferencesPermissionEnforcement
        # (on in the local stack) allows only with `update` on the owner's finalizers.
        (
            ("lokifistorages/finalizers", "update"),
            types.POSTGRES_READY,
            "cannot set blockOwnerDeletion",
        ),
    ],
    ids=["cronjobs-create", "finalizers-update"],
)
def test_a_permission_taken_out_of_the_role_is_named_on_the_resource(
    full_example: FullExample,
    chart_release: ChartRelease,
    started: list[OperatorProcess],
    tmp_path: Path,
    drop: tuple[str, str],
    kind: str,
    said: str,
) -> None:
    chart_release.install({}, drop=drop)
    full_example.create_secrets()
    full_example.apply()
    start_as_service_account(chart_release, tmp_path, started)

    def refused() -> dict[str, Any] | None:
        condition = conditions(full_example.get()).get(kind)
        return condition if condition and condition.get("reason") == "Forbidden" else None

    condition = wait_for(refused, 90, f"{kind}=False with reason Forbidden")
    assert condition["status"] == "False"
    assert said in condition["message"]
    assert "rbac.yaml" in condition["message"]
    conds = conditions(full_example.get())
    assert conds[types.READY]["status"] == "False"
    # The parts the role still allows went on: the partitions were made.
    assert conds[types.PARTITIONS_READY]["status"] == "True"
