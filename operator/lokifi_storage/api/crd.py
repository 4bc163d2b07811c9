"""The LokifiStorage CustomResourceDefinition, generated from the pydantic models.

`lokifi-storage crd` prints `crd_yaml()`; crds/lokifistorage.yaml is that output, and a unit test
fails when the two differ, so the models stay the one source of truth.

pydantic writes JSON Schema; the API server wants a *structural* OpenAPI v3 schema. The
translation here:
- `$ref`s are inlined (the API server resolves none);
- `Optional[X]` (`anyOf: [X, null]`) becomes X: an absent field is how Kubernetes says "none";
- `additionalProperties: false` (extra="forbid") is dropped: it may not stand beside
  `properties`; the API server prunes unknown fields, and kubectl's strict field validation
  (the default) refuses them with the field's name;
- the one true union (`where.equals`: bool, int or string) keeps
  `x-kubernetes-preserve-unknown-fields`, the only structural way to accept three scalar types,
  with `maxProperties: 0`, `maxItems: 0`, `multipleOf: 1` and `not: {enum: [{}, []]}` keeping it
  a scalar (CEL cannot see an untyped field); quantities and Redis setting values use
  `x-kubernetes-int-or-string`;
- `title`s are dropped; a field's description and its model's docstring are joined, so
  `kubectl explain` shows both what the field is for and what the object does;
- only scalar defaults are kept (the API server applies them, and CEL rules see them);
- CEL rules, list types, patterns and limits come from the models' `json_schema_extra` and
  field constraints unchanged.
Every list and string a CEL rule walks has a maxItems/maxLength, so the API server's cost
estimator accepts the rules.
"""

from __future__ import annotations

from typing import Any, Final

import yaml
from pydantic import BaseModel

from lokifi_storage.api.coordinates import (
    CRD_NAME,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import LokifiStorageStatus

_DROPPED_KEYS: Final = frozenset({"title", "$defs"})
_SCALARS: Final = (str, int, float, bool)
_EXCLUSIVE_BOUNDS: Final = {"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}

PRINTER_COLUMNS: Final = (
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether every declared part is at its desired state.",
    },
    {
        "name": "Partitions",
        "type": "integer",
        "jsonPath": ".status.summary.partitions",
        "description": "Partitions of all managed tables.",
    },
    {
        "name": "DB Size",
        "type": "string",
        "jsonPath": ".status.storage.databaseSize",
        "description": "Size of the database.",
    },
    {
        "name": "Replica Lag",
        "type": "number",
        "jsonPath": ".status.summary.maxReplicaLagSeconds",
        "description": "Replay lag of the most lagging replica, in seconds.",
    },
    {
        "name": "Last Backup",
        "type": "date",
        "jsonPath": ".status.summary.lastBackupTime",
        "description": "Newest successful backup of any schedule.",
    },
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    },
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Why Ready has its status.",
    },
)


class SchemaError(ValueError):
    """A model produced JSON Schema that has no structural OpenAPI equivalent."""


def _join(first: str | None, second: str | None) -> str | None:
    parts = [text.strip() for text in (first, second) if text and text.strip()]
    unique = list(dict.fromkeys(parts))
    return "\n\n".join(unique) if unique else None


def _structural(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """Translate one pydantic JSON Schema node (and its children) to structural OpenAPI."""
    node = dict(node)
    if "$ref" in node:
        target = _structural(defs[node.pop("$ref").rsplit("/", 1)[-1]], defs, path)
        description = _join(node.pop("description", None), target.pop("description", None))
        node = {**target, **_structural(node, defs, path)}
        if description:
            node["description"] = description
        return node
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if node.get("default", 0) is None:
            node.pop("default")
        if len(options) == 1:
            inner = _structural(options[0], defs, path)
            description = _join(node.pop("description", None), inner.pop("description", None))
            node = {**inner, **_structural(node, defs, path)}
            if description:
                node["description"] = description
            return node
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            raise SchemaError(f"{path}: a union of several types is not structural")
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                result[key] = _structural(value, defs, f"{path}.*")
            continue
        if key == "properties":
            result[key] = {
                name: _structural(child, defs, f"{path}.{name}") for name, child in value.items()
            }
        elif key == "items":
            result[key] = _structural(value, defs, f"{path}[*]")
        elif key == "default":
            if isinstance(value, _SCALARS):
                result[key] = value
        elif key in _EXCLUSIVE_BOUNDS:
            # JSON Schema 2020-12 writes `exclusiveMinimum: 0`; OpenAPI v3.0, which the API
            # server reads, writes `minimum: 0` with `exclusiveMinimum: true`.
            result[_EXCLUSIVE_BOUNDS[key]] = value
            result[key] = True
        else:
            result[key] = value
    return result


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of `model`, as the CRD embeds it."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.get("$defs", {})
    return _structural(schema, defs, model.__name__)


def resource_schema() -> dict[str, Any]:
    """The whole object's schema: apiVersion, kind, metadata, spec, status."""
    return {
        "type": "object",
        "description": (
            "LokifiStorage declares the storage stack of one Lokifi deployment - PostgreSQL "
            "primary, replicas and partitioned tables, a Redis Cluster, S3 buckets and "
            "backups - and reports what the operator found and did."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "storage.lokifi.ai/v1alpha1"},
            "kind": {"type": "string", "description": "LokifiStorage"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(LokifiStorageSpec),
            "status": openapi_schema(LokifiStorageStatus),
        },
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition as a plain dict (apiextensions.k8s.io/v1)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "lokifi-storage-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in PRINTER_COLUMNS],
                    "schema": {"openAPIV3Schema": resource_schema()},
                }
            ],
        },
    }


HEADER: Final = (
    "# Generated by `lokifi-storage crd` from operator/lokifi_storage/api; do not edit.\n"
    "# Regenerate with: lokifi-storage crd > crds/lokifistorage.yaml\n"
)


def crd_yaml() -> str:
    """The CRD as the YAML document committed in crds/lokifistorage.yaml."""
    body = yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body
