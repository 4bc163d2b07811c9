"""pyproject.toml's dependencies are exactly what the package imports.

A module used but not declared (aiohttp came only through kopf) breaks the day the dependency
that brought it drops it; a dependency declared but never imported (psycopg-pool, once the pools
became our own) is installed into every image for nothing.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "lokifi_storage"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        _normal(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]
    }


# Released in lockstep with the library that requires them (boto3 pins botocore's range,
# pydantic pins pydantic-core exactly): declared through that library, or the pins would fight.
COMPANIONS = {"botocore": "boto3", "pydantic-core": "pydantic"}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Imports under `if TYPE_CHECKING:` (stubs, a development dependency)."""
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }


def _imported() -> set[str]:
    """Distributions of every third-party module the package imports at run time."""
    modules: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"lokifi_storage"}
    owners = packages_distributions()
    dists = {_normal(dist) for module in third_party for dist in owners.get(module, [module])}
    return {COMPANIONS.get(dist, dist) for dist in dists}


def test_every_imported_distribution_is_declared() -> None:
    missing = _imported() - _declared()
    assert not missing, f"imported but not in pyproject.toml's dependencies: {sorted(missing)}"


def test_every_declared_dependency_is_imported() -> None:
    unused = _declared() - _imported()
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"
