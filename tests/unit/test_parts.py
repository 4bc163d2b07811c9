"""The parts the reconciler runs: every one listed, each a `Part`, nothing owned twice or never.

mypy checks each part against the protocol where it is listed (`PARTS: tuple[Part, ...]` in
reconcile/resource.py); these tests catch what the type checker cannot: a part module written
and never listed, a condition or status block no part reports, two parts claiming one.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

import lokifi_storage.reconcile
from lokifi_storage.api import conditions as types
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.domain.conditions import BLOCK_KEYS
from lokifi_storage.reconcile.parts import Part, PartContext
from lokifi_storage.reconcile.resource import PARTS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Blocks the reconciler writes itself, from the owned objects and the dry-run plan.
RECONCILER_BLOCKS = {"connectionSecret", "plan"}


def _part_modules() -> dict[str, object]:
    """Every module of lokifi_storage.reconcile that defines a module-level PART."""
    found = {}
    for info in pkgutil.iter_modules(lokifi_storage.reconcile.__path__):
        module = importlib.import_module(f"lokifi_storage.reconcile.{info.name}")
        if hasattr(module, "PART"):
            found[info.name] = module.PART
    return found


def test_every_part_module_is_listed_in_parts() -> None:
    modules = _part_modules()
    assert modules, "no part module found: the scan itself is broken"
    missing = sorted(name for name, part in modules.items() if part not in PARTS)
    assert not missing, f"reconcile/{missing} define PART but resource.PARTS does not list it"
    assert len(PARTS) == len(modules)


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_each_listed_part_satisfies_the_protocol(part: Part) -> None:
    assert isinstance(part, Part)
    assert isinstance(part.name, str)
    assert part.name
    assert all(kind in types.PART_CONDITIONS for kind in part.conditions)
    assert all(key in BLOCK_KEYS for key in part.status_keys)


def test_every_part_condition_is_reported_by_exactly_one_part() -> None:
    owners = Counter(kind for part in PARTS for kind in part.conditions)
    assert sorted(owners) == sorted(types.PART_CONDITIONS)
    assert set(owners.values()) == {1}


def test_every_status_block_has_exactly_one_owner() -> None:
    owners = Counter(key for part in PARTS for key in part.status_keys)
    assert set(owners) | RECONCILER_BLOCKS == set(BLOCK_KEYS)
    assert set(owners.values()) == {1}
    assert not set(owners) & RECONCILER_BLOCKS


def test_part_names_are_unique_since_metrics_and_messages_use_them() -> None:
    assert len({part.name for part in PARTS}) == len(PARTS)


def test_an_object_missing_a_step_is_not_a_part() -> None:
    class NoRelease:
        name = "half"
        conditions = (types.REDIS_READY,)
        status_keys = ("redis",)

        def declared(self, spec: LokifiStorageSpec) -> bool:
            return True

        def run(self, ctx: PartContext) -> list[object]:
            return []

        def cleanup(self, ctx: PartContext) -> list[str]:
            return []

    assert not isinstance(NoRelease(), Part)


@pytest.mark.parametrize(
    ("example", "names"),
    [
        ("minimal", ["postgres", "partitions"]),
        ("full", [part.name for part in PARTS]),
    ],
)
def test_the_examples_declare_the_parts_they_show(example: str, names: list[str]) -> None:
    resource = yaml.safe_load((EXAMPLES / f"lokifistorage-{example}.yaml").read_text())
    spec = LokifiStorageSpec.model_validate(resource["spec"])
    assert [part.name for part in PARTS if part.declared(spec)] == names
