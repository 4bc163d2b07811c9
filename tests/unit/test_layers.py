"""The package's layers import only downward; this test is the layer diagram made executable.

api < domain < builders < clients < reconcile < handlers < runtime, with jobs beside reconcile
(it may use clients, domain and api), admin (the plan and the kubectl plugin) above reconcile and
jobs, and cli.py on top. runtime (the process: start-up, Leases, health, scheduling) sits above
handlers because it builds Kopf's registry from them; handlers never reach back into it. A pure
layer that imported a client would quietly start doing I/O, which is what keeps planners testable
without servers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "lokifi_storage"

ALLOWED: dict[str, set[str]] = {
    "api": {"api"},
    "domain": {"api", "domain"},
    "builders": {"api", "domain", "builders"},
    "clients": {"api", "domain", "clients"},
    "reconcile": {"api", "domain", "builders", "clients", "reconcile", "metrics"},
    "jobs": {"api", "domain", "builders", "clients", "jobs", "metrics"},
    "handlers": {"api", "domain", "builders", "clients", "reconcile", "handlers", "metrics"},
    "runtime": {
        "api",
        "domain",
        "builders",
        "clients",
        "reconcile",
        "handlers",
        "runtime",
        "metrics",
    },
    "admin": {"api", "domain", "builders", "clients", "reconcile", "jobs", "admin"},
}

# Third-party modules that mean I/O: forbidden in the pure layers.
IO_MODULES = {"psycopg", "psycopg_pool", "redis", "boto3", "botocore", "kubernetes", "kopf"}
PURE_LAYERS = {"api", "domain", "builders"}
# ...except what only composes text: psycopg.sql quotes identifiers and literals without a
# connection, so the partition SQL lives with its planner (domain/partitions/).
PURE_EXCEPTIONS = {"psycopg.sql"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "psycopg":  # `from psycopg import sql` is psycopg.sql
                names.extend(f"psycopg.{alias.name}" for alias in node.names)
            else:
                names.append(node.module)
    return names


def _modules() -> list[tuple[str, Path]]:
    return [
        (path.relative_to(PACKAGE).parts[0], path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if len(path.relative_to(PACKAGE).parts) > 1
    ]


@pytest.mark.parametrize(("layer", "path"), _modules(), ids=lambda v: str(v))
def test_module_imports_only_from_layers_below_it(layer: str, path: Path) -> None:
    if layer not in ALLOWED:
        pytest.skip(f"{layer} is not a layer")
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "lokifi_storage" and len(parts) > 1:
            assert parts[1] in ALLOWED[layer], (
                f"{path.relative_to(PACKAGE)} ({layer}) imports {name}; "
                f"{layer} may import only {sorted(ALLOWED[layer])}"
            )
        if layer in PURE_LAYERS and name not in PURE_EXCEPTIONS:
            assert parts[0] not in IO_MODULES, (
                f"{path.relative_to(PACKAGE)} is in the pure layer {layer} but imports {name}"
            )


def test_every_layer_folder_is_known() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(ALLOWED), f"unknown layer folders: {folders - set(ALLOWED)}"
