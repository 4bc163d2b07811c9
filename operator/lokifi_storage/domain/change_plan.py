"""What a reconcile would change, in one shape for every part: the plan admins read.

The reconcile and `lokifi-storage plan` (and a resource in dry-run) run the same observe -> plan
steps of each part; with apply off, each part hands back `Change`s instead of carrying them out.
This module holds that shape and its summaries, so the CLI, status.plan and the Events all say
the same thing in the same words.

A change names fields, never values of Secrets: `FieldChange.secret` marks a field whose old and
new values must not be shown (the connection Secret's keys), and `public()` drops them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lokifi_storage.domain.schedule_diff import contained_in

__all__ = [
    "PARTS",
    "Change",
    "ChangeKind",
    "FieldChange",
    "changed_fields",
    "changes_from_json",
    "plan_status",
    "plan_summary",
]

ChangeKind = Literal["create", "update", "delete"]

# The parts a reconcile writes to, in the order a plan lists them.
PARTS: Final = ("partitions", "redis", "objectStorage", "connectionSecret", "cronJobs")


@dataclass(frozen=True)
class FieldChange:
    """One field of a target that changes; `old`/`new` None when absent (or secret)."""

    name: str
    old: str | None = None
    new: str | None = None
    secret: bool = False

    def describe(self) -> str:
        if self.secret:
            return f"{self.name} (value not shown)"
        return f"{self.name}: {self.old if self.old is not None else '(none)'} -> " + (
            self.new if self.new is not None else "(none)"
        )

    def public(self) -> dict[str, Any]:
        """name, and old/new when shown and present (absent rather than null: the API server
        drops nulls from status, and the stored plan must compare equal to the next one)."""
        out: dict[str, Any] = {"name": self.name}
        if not self.secret:
            out.update({k: v for k, v in (("old", self.old), ("new", self.new)) if v is not None})
        return out


@dataclass(frozen=True)
class Change:
    """One write a reconcile would make: on `target` (a table, a Redis node, a bucket, an
    object name) of `part`, of `kind`; `detail` is the sentence the reconcile's Event would say."""

    part: str
    target: str
    kind: ChangeKind
    detail: str
    fields: tuple[FieldChange, ...] = field(default=())

    def describe(self) -> str:
        return self.detail

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "part": self.part,
            "target": self.target,
            "kind": self.kind,
            "detail": self.detail,
        }
        if self.fields:
            out["fields"] = [f.public() for f in self.fields]
        return out


def changes_from_json(items: Iterable[Mapping[str, Any]]) -> list[Change]:
    """The inverse of `Change.public()` (fields marked secret come back valueless)."""
    out: list[Change] = []
    for item in items:
        fields = tuple(
            FieldChange(
                name=str(f["name"]),
                old=f.get("old"),
                new=f.get("new"),
                secret="old" not in f and "new" not in f,  # a shown field has one of them
            )
            for f in item.get("fields") or []
        )
        out.append(
            Change(
                part=str(item["part"]),
                target=str(item["target"]),
                kind=item["kind"],
                detail=str(item["detail"]),
                fields=fields,
            )
        )
    return out


def plan_summary(changes: Sequence[Change]) -> str:
    """`Plan: 2 to create, 1 to change, 0 to delete (partitions 2, redis 1).`, or no changes."""
    if not changes:
        return "No changes: the live state matches the spec."
    kinds = Counter(c.kind for c in changes)
    parts = Counter(c.part for c in changes)
    per_part = ", ".join(f"{p} {parts[p]}" for p in sorted(parts, key=_part_order))
    return (
        f"Plan: {kinds['create']} to create, {kinds['update']} to change, "
        f"{kinds['delete']} to delete ({per_part})."
    )


def _part_order(part: str) -> int:
    return PARTS.index(part) if part in PARTS else len(PARTS)


# status.plan keeps at most this many changes: a resource's status must stay small (etcd's
# object limit), and the count and summary still say how many there are.
MAX_STATUS_CHANGES: Final = 50


def plan_status(changes: Sequence[Change], generation: int | None) -> dict[str, Any]:
    """status.plan for a resource in dry-run: the summary and the changes, ordered by part."""
    ordered = sorted(changes, key=lambda c: (_part_order(c.part), c.target))
    return {
        "observedGeneration": generation,
        "summary": plan_summary(ordered),
        "changes": len(ordered),
        "items": [c.public() for c in ordered[:MAX_STATUS_CHANGES]],
    }


def _short(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def changed_fields(
    desired: Any, observed: Any, path: str = "", *, limit: int = 8
) -> list[FieldChange]:
    """Paths (`spec.schedule`, `spec.jobTemplate...env[LOKIFI_TABLES_JSON]`) where `desired`
    is not contained in `observed`, with short old/new text for scalars; the first `limit`.

    Lists of mappings with a `name` are matched by name (containers, env), like the write check
    in domain/schedule_diff.py; other lists compare whole.
    """
    out: list[FieldChange] = []
    if isinstance(desired, Mapping) and isinstance(observed, Mapping):
        for key, value in desired.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in observed:
                out.append(FieldChange(where, None, _short(value) if _scalar(value) else "(set)"))
            elif not contained_in({key: value}, {key: observed[key]}):
                out += changed_fields(value, observed[key], where, limit=limit)
    elif (
        isinstance(desired, list)
        and isinstance(observed, list)
        and all(isinstance(d, Mapping) and "name" in d for d in desired)
    ):
        by_name = {o.get("name"): o for o in observed if isinstance(o, Mapping)}
        for item in desired:
            where = f"{path}[{item['name']}]"
            if item["name"] not in by_name:
                out.append(FieldChange(where, None, "(added)"))
            elif not contained_in(item, by_name[item["name"]]):
                out += changed_fields(item, by_name[item["name"]], where, limit=limit)
    elif _scalar(desired) and _scalar(observed):
        out.append(FieldChange(path, _short(observed), _short(desired)))
    else:
        out.append(FieldChange(path, "(changed)", "(changed)"))
    return out[:limit]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
