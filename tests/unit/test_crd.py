"""The CRD is generated from the models, and what is committed is what is generated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lokifi_storage.api.crd import build_crd, crd_yaml

COMMITTED = Path(__file__).resolve().parents[2] / "crds" / "lokifistorage.yaml"


def _walk(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, child in node.get("properties", {}).items():
            found += _walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            found += _walk(node["items"], f"{path}[*]")
        if isinstance(node.get("additionalProperties"), dict):
            found += _walk(node["additionalProperties"], f"{path}.*")
    return found


def _schema() -> dict[str, Any]:
    version = build_crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crd_is_the_one_generated_from_the_models() -> None:
    assert COMMITTED.read_text() == crd_yaml(), (
        "crds/lokifistorage.yaml differs from the models: regenerate it with "
        "`lokifi-storage crd > crds/lokifistorage.yaml`"
    )


def test_every_schema_node_is_structural() -> None:
    for path, node in _walk(_schema()):
        assert "$ref" not in node, path
        assert "anyOf" not in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        typed = "type" in node or node.get("x-kubernetes-preserve-unknown-fields")
        assert typed or node.get("x-kubernetes-int-or-string"), f"{path} has no type"


def test_exclusive_bounds_are_written_the_openapi_v3_0_way() -> None:
    for path, node in _walk(_schema()):
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            assert node.get(key, True) is True, f"{path}.{key} must be a boolean"


def test_resource_has_short_name_status_subresource_and_printer_columns() -> None:
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["lks"]
    assert crd["spec"]["scope"] == "Namespaced"
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:6] == ["Ready", "Partitions", "DB Size", "Replica Lag", "Last Backup", "Age"]


def test_committed_crd_is_valid_yaml_of_one_document() -> None:
    documents = list(yaml.safe_load_all(COMMITTED.read_text()))
    assert len(documents) == 1
    assert documents[0]["metadata"]["name"] == "lokifistorages.storage.lokifi.ai"
