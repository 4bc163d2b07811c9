"""The package's layers import only downward; this test is the layer diagram made executable.

api < domain < builders < clients < reconcile < handlers < runtime, with jobs beside reconcile
(it may use clients, domain and api), admin (the plan and the kubectl plugin) above reconcile and
jobs, and cli.py on top. runtime (the process: start-up, Leases, health, scheduling) sits above
handlers because it builds Kopf's registry from them; handlers never reach back into it. A pure
layer that imported a client would quietly start doing I/O, which is what keeps planners testable
without servers.

metrics/ (the Prometheus series, which the reconcilers, jobs and the runtime all update) sits just
above domain, and the top-level module cli.py (the command line) is a layer of its own, on top of
everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "lokifi_storage"

ALLOWED: dict[str, set[str]] = {
    "api": {"api"},
    "domain": {"api", "domain"},
    "metrics": {"api", "domain", "metrics"},
    "builders": {"api", "domain", "builders"},
    "clients": {"api", "domain", "clients"},
    "reconcile": {"api", "domain", "builders", "clients", "reconcile", "metrics"},
    "jobs": {"api", "domain", "builders", "clients", "jobs", "metrics"},
    "handlers": {"api", "domain", "builders", "clients", "reconcile", "handlers", "metrics"},
    "admin": {"api", "domain", "builders", "clients", "reconcile", "jobs", "admin"},
}
ALLOWED["runtime"] = ALLOWED["handlers"] | {"runtime"}
ALLOWED["cli"] = set(ALLOWED) - {"cli"}

# Third-party modules that mean I/O: forbidden in the pure layers.
IO_MODULES = {"psycopg", "psycopg_pool", "redis", "boto3", "botocore", "kubernetes", "kopf"}
PURE_LAYERS = {"api", "domain", "builders"}
# ...except what only composes text: psycopg.sql quotes identifiers and literals without a
# connection, so the partition SQL lives with its planner (domain/partitions/).
PURE_EXCEPTIONS = {"psycopg.sql"}


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from psycopg import sql` is psycopg.sql; `from lokifi_storage import metrics`
            # names its layer in the alias (`__version__` is the package's own, no layer)
            if node.module == "psycopg":
                names.extend(f"psycopg.{alias.name}" for alias in node.names)
            elif node.module == "lokifi_storage":
                names.extend(
                    f"lokifi_storage.{alias.name}" if _is_module(alias.name) else "lokifi_storage"
                    for alias in node.names
                )
            else:
                names.append(node.module)
    return names


def _layer(path: Path) -> str:
    """A folder is a layer; so is a module at the package's top (cli.py)."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _modules() -> list[tuple[str, Path]]:
    return [
        (_layer(path), path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE) != Path("__init__.py")
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


def test_the_top_level_modules_are_layers() -> None:
    top = {_layer(path) for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
    assert top == {"cli"}, f"a new top-level module needs a place in ALLOWED: {top}"


def test_every_layer_folder_is_known() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(ALLOWED), f"unknown layer folders: {folders - set(ALLOWED)}"


def _dynamic_imports(path: Path) -> list[str]:
    """Every way of loading a module by a name computed at run time: such an import is invisible
    to the test above, and a mistyped name fails only when (and if) that line runs."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "importlib"]
        elif isinstance(node, ast.ImportFrom) and node.module == "importlib":
            names = [f"importlib.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("importlib."):
            names = [str(node.module)]
        elif isinstance(node, ast.Name) and node.id == "__import__":
            names = ["__import__"]
        found += [f"line {getattr(node, 'lineno', 0)}: {name}" for name in names]
    return found


@pytest.mark.parametrize(("layer", "path"), _modules(), ids=lambda v: str(v))
def test_no_module_is_imported_by_a_name_computed_at_run_time(layer: str, path: Path) -> None:
    assert not _dynamic_imports(path), (
        f"{path.relative_to(PACKAGE)} ({layer}) loads modules by name: {_dynamic_imports(path)};"
        " import them where they are used so this test sees the layer they come from"
    )
