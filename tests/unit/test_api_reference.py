"""docs/api.md is generated from the models, and it shows every field of every object type."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from typer.testing import CliRunner

from lokifi_storage.api.reference import api_reference
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import LokifiStorageStatus
from lokifi_storage.cli import app

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Models inside an annotation: X, X | None, list[X], dict[str, X], Annotated[X, ...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType) or get_args(annotation):
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    return []


def _all_models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from `root` through model_fields (not through the JSON schema
    the generator reads, so a type the generator skipped is still found here)."""
    found: dict[str, type[BaseModel]] = {}
    pending = [root]
    while pending:
        model = pending.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            pending += _models_in(field.annotation)
    return found


def _section(text: str, name: str) -> str:
    start = text.index(f"\n## {name}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_committed_api_reference_is_the_one_generated_from_the_models() -> None:
    assert COMMITTED.read_text() == api_reference(), (
        "docs/api.md differs from the models: regenerate it with "
        "`lokifi-storage docs api > docs/api.md`"
    )


def test_every_field_of_every_model_has_a_row_in_its_own_section() -> None:
    text = api_reference()
    models = {**_all_models(LokifiStorageSpec), **_all_models(LokifiStorageStatus)}
    assert len(models) > 30  # the walk above really went down into the nested parts
    missing: list[str] = []
    for name, model in models.items():
        if f"\n## {name}\n" not in text:
            missing.append(f"section {name}")
            continue
        section = _section(text, name)
        for field_name, field in model.model_fields.items():
            yaml_name = field.alias or field_name
            if f"\n| `{yaml_name}` |" not in section:
                missing.append(f"{name}.{yaml_name}")
    assert not missing, f"docs/api.md does not show: {', '.join(missing)}"


def test_nested_types_link_to_their_sections() -> None:
    text = api_reference()
    assert "| `tables` | array of [TableSpec](#tablespec) |" in text
    assert "| `primary` | [PrimarySpec](#primaryspec) | required |" in text
    for anchor in {part.split(")")[0] for part in text.split("](#")[1:]}:
        assert f"\n## {anchor}" in text.lower(), f"link to #{anchor} has no section"


def test_constraints_and_defaults_come_from_the_field_definitions() -> None:
    text = api_reference()
    interval = _section(text, "PartitionBySpec")
    assert "one of `day`, `week`, `month`, `quarter`, `year`" in interval
    pool = _section(text, "PoolSpec")
    assert "| `size` | integer | default `20` |" in pool
    assert "≥ 1; ≤ 1000" in pool
    assert "retention.dropAfterDays must be greater than archive.afterDays" in _section(
        text, "TableSpec"
    )


def test_pipes_inside_patterns_do_not_break_the_table() -> None:
    for line in api_reference().splitlines():
        if line.startswith("| `"):
            unescaped = line.replace("\\|", "")
            assert unescaped.count("|") == 6, line


def test_docs_api_command_prints_the_reference() -> None:
    result = CliRunner().invoke(app, ["docs", "api"])
    assert result.exit_code == 0, result.output
    assert result.output == api_reference()
