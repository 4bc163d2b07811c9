"""Write manifests/base/ from the Helm chart's defaults, so kustomize users get the same objects.

    .venv/bin/python scripts/render_manifests.py        # rewrite manifests/base/*.yaml
    .venv/bin/python scripts/render_manifests.py --check  # exit 1 when they are out of date

The chart is the one source: `helm template` with default values, release
`lokifi-storage-operator` in namespace `lokifi-system`, split into one file per kind group.
Helm's own labels are replaced (`managed-by: kustomize`, no `helm.sh/chart`), since nothing of
Helm's is involved when these are applied. tests/chart/ checks the files stay in step.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "lokifi-storage-operator"
BASE = REPO / "manifests" / "base"
RELEASE = "lokifi-storage-operator"
NAMESPACE = "lokifi-system"
HEADER = (
    "# Generated from charts/lokifi-storage-operator by scripts/render_manifests.py; do not edit.\n"
)

# Which file of the base each kind goes to (kustomization.yaml lists them in this order).
FILES: dict[str, str] = {
    "CustomResourceDefinition": "crd.yaml",
    "ServiceAccount": "rbac.yaml",
    "ClusterRole": "rbac.yaml",
    "ClusterRoleBinding": "rbac.yaml",
    "Role": "rbac.yaml",
    "RoleBinding": "rbac.yaml",
    "Deployment": "deployment.yaml",
    "Service": "service.yaml",
}


def helm_template(*args: str) -> list[dict[str, Any]]:
    """The chart rendered by the project's pinned Helm, as a list of objects."""
    out = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "helm.sh"),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--include-crds",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as kustomize users get it: Helm's bookkeeping labels replaced."""
    for meta in _metadatas(obj):
        labels = meta.get("labels")
        if labels:
            labels.pop("helm.sh/chart", None)
            if labels.get("app.kubernetes.io/managed-by") == "Helm":
                labels["app.kubernetes.io/managed-by"] = "kustomize"
    return obj


def _metadatas(obj: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield obj.setdefault("metadata", {})
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict) and "metadata" in template:
        yield template["metadata"]


def render_base() -> dict[str, str]:
    """File name -> YAML text of manifests/base (without kustomization.yaml and namespace.yaml)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for obj in helm_template():
        kind = obj["kind"]
        if kind not in FILES:
            raise SystemExit(f"the chart renders a {kind}: add it to FILES in {__file__}")
        groups.setdefault(FILES[kind], []).append(without_helm_labels(obj))
    return {
        name: HEADER + yaml.safe_dump_all(objs, sort_keys=False, explicit_start=True)
        for name, objs in groups.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if manifests/base is stale")
    args = parser.parse_args()
    stale = []
    for name, text in render_base().items():
        path = BASE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(
            f"manifests/base/{', '.join(stale)} differ from the chart: "
            "run .venv/bin/python scripts/render_manifests.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
