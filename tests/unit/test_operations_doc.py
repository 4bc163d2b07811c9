"""docs/operations.md explains every condition type and every reason of api/conditions.py.

Adding a reason without documenting what it means and what to do fails here, so the page the
admin on call reads never lags behind what the operator reports.
"""

from __future__ import annotations

import re
from pathlib import Path

from lokifi_storage.api import conditions
from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.conditions import STALLING_REASONS

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
HEADING = re.compile(r"^#{2,6} `(?P<name>[A-Za-z]+)`(?P<rest>.*)$", re.MULTILINE)


def _condition_types() -> list[str]:
    types = [conditions.READY, conditions.RECONCILING, conditions.STALLED]
    return types + list(conditions.PART_CONDITIONS)


def _reasons() -> list[str]:
    return [
        value
        for name, value in vars(Reason).items()
        if name.isupper() and not name.startswith("_") and isinstance(value, str)
    ]


def _reference_section() -> str:
    text = OPERATIONS.read_text()
    start = text.index("\n## Conditions and reasons\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _headings() -> dict[str, str]:
    """`name` -> the rest of its heading line, for every `### `Name`` heading of the section."""
    return {m["name"]: m["rest"] for m in HEADING.finditer(_reference_section())}


def _body(name: str) -> str:
    section = _reference_section()
    own = next(m for m in HEADING.finditer(section) if m["name"] == name)
    following = HEADING.search(section, own.end())
    return section[own.end() : following.start() if following else len(section)]


def test_the_vocabulary_is_read_from_the_code() -> None:
    assert len(_reasons()) >= 40
    assert "SecretNotFound" in _reasons()
    assert "CapacityOK" in _condition_types()


def test_every_condition_type_has_its_own_heading() -> None:
    missing = [name for name in _condition_types() if name not in _headings()]
    assert not missing, f"docs/operations.md has no heading for condition type(s): {missing}"


def test_every_reason_has_its_own_heading() -> None:
    missing = [reason for reason in _reasons() if reason not in _headings()]
    assert not missing, f"docs/operations.md has no heading for reason(s): {missing}"


def test_every_reason_says_what_it_means_and_what_to_do() -> None:
    thin = [reason for reason in _reasons() if len(_body(reason).split()) < 10]
    assert not thin, f"say what these reasons mean and what to do: {thin}"


def test_reasons_marked_as_stalling_are_exactly_those_the_operator_stalls_on() -> None:
    headings = _headings()
    marked = {reason for reason in _reasons() if "(stalls" in headings.get(reason, "")}
    wrong = sorted(marked ^ set(STALLING_REASONS))
    assert not wrong, f"(stalls) in docs/operations.md disagrees with STALLING_REASONS: {wrong}"


def test_every_reason_is_marked_with_how_it_is_handled() -> None:
    kinds = ("(stalls", "(retried)", "(healthy)", "(event)", "(advisory)", "(job)")
    headings = _headings()
    unmarked = [r for r in _reasons() if not headings.get(r, "").strip().startswith(kinds)]
    assert not unmarked, f"mark how these reasons are handled: {unmarked}"
