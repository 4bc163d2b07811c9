"""A bucket's lifecycle configuration: the spec's rules merged into what S3 has. Pure.

Ownership: the operator manages the rules whose ids the spec declares and keeps
every other rule of the bucket untouched. S3 has no per-rule write (PutBucketLifecycleConfiguration
replaces the whole document), so the plan is the whole merged document:

- a current rule with a declared id is replaced in place by the spec's rendering of it;
- declared rules the bucket does not have yet are appended;
- a rule the operator set on an earlier pass (its id is in status `managedRules`) whose id the
  spec no longer declares is removed: without that memory, deleting a rule from the spec would
  leave it on the bucket forever;
- every other rule (a foreign rule) is copied back exactly as S3 returned it.

Rules are compared in a normalized form (prefix from Filter.Prefix or the legacy top-level
Prefix, transitions as a set, empty values dropped), so the same rule written differently by
S3 is not a difference, and nothing is written when nothing differs.

Before any write the merged document is checked with the rules S3 enforces, re-using the API's
own validation of each declared rule (storage classes, minimum days, increasing transitions, an
action per rule) plus what only the merged document shows: at most 1000 rules, unique ids.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lokifi_storage.api.spec import LifecycleRuleSpec
from lokifi_storage.api.spec_s3 import MAX_LIFECYCLE_RULES

__all__ = [
    "LifecyclePlan",
    "canonical_rule",
    "plan_lifecycle",
    "render_rule",
    "rule_problems",
]

Rule = dict[str, Any]


def render_rule(spec: LifecycleRuleSpec) -> Rule:
    """The S3 LifecycleRule document of one spec rule."""
    rule: Rule = {
        "ID": spec.id,
        "Filter": {"Prefix": spec.prefix},
        "Status": "Enabled" if spec.enabled else "Disabled",
    }
    if spec.transitions:
        rule["Transitions"] = [
            {"Days": t.afterDays, "StorageClass": t.storageClass} for t in spec.transitions
        ]
    if spec.expirationDays is not None:
        rule["Expiration"] = {"Days": spec.expirationDays}
    if spec.abortIncompleteUploadsAfterDays is not None:
        rule["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": spec.abortIncompleteUploadsAfterDays
        }
    return rule


def _pruned(value: Any) -> Any:
    """Drop empty and false-y optional parts, which S3 may or may not echo back."""
    if isinstance(value, Mapping):
        kept = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", [], {}, False)}
    if isinstance(value, list | tuple):
        return [_pruned(v) for v in value]
    return value


def canonical_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A comparable form of a rule as rendered or as S3 returned it."""
    filt = dict(rule.get("Filter") or {})
    prefix = filt.pop("Prefix", None)
    if prefix is None:
        prefix = rule.get("Prefix")  # the legacy, pre-Filter form
    transitions = sorted(
        (
            sorted(_pruned(t).items())
            for t in rule.get("Transitions") or []
            if isinstance(t, Mapping)
        ),
        key=repr,
    )
    rest = {
        key: _pruned(value)
        for key, value in rule.items()
        if key not in ("ID", "Filter", "Prefix", "Status", "Transitions")
    }
    return {
        "id": rule.get("ID"),
        "status": rule.get("Status"),
        "prefix": prefix or "",
        "filter": _pruned(filt),
        "transitions": transitions,
        "rest": {k: v for k, v in rest.items() if v not in (None, "", [], {})},
    }


def rule_problems(spec: LifecycleRuleSpec) -> list[str]:
    """What S3 would refuse about one declared rule, by the API model's own validation.

    Admission already ran it; running it again here means a spec that skipped admission (an
    older CRD, a direct status-less apply) still never reaches S3 with a rule S3 refuses.
    """
    try:
        LifecycleRuleSpec.model_validate(spec.model_dump(by_alias=True))
    except ValidationError as error:
        return [f"rule {spec.id!r}: {e['msg']}" for e in error.errors()]
    return []


@dataclass(frozen=True)
class LifecyclePlan:
    """The merged document and what it changes. `write` is None when nothing differs;
    "put" writes `rules`; "delete" removes the configuration (S3 refuses an empty PUT)."""

    bucket: str
    rules: list[Rule]
    write: str | None
    replaced: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    managed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One sentence for the Event and the condition message."""
        parts = []
        for verb, ids in (
            ("replaced", self.replaced),
            ("added", self.added),
            ("removed", self.removed),
        ):
            if ids:
                parts.append(f"{verb} {', '.join(ids)}")
        kept = f"; kept {len(self.foreign)} rule(s) it does not manage" if self.foreign else ""
        return f"bucket {self.bucket}: lifecycle rules {'; '.join(parts) or 'unchanged'}{kept}"


def _foreign_name(rule: Mapping[str, Any], index: int) -> str:
    rule_id = rule.get("ID")
    return str(rule_id) if rule_id else f"#{index + 1} (no id)"


def plan_lifecycle(
    bucket: str,
    declared: Sequence[LifecycleRuleSpec],
    current: Sequence[Mapping[str, Any]],
    previously_managed: Collection[str] = (),
) -> LifecyclePlan:
    """Merge `declared` into `current` (see the module docstring); pure."""
    wanted = {spec.id: render_rule(spec) for spec in declared}
    retired = set(previously_managed) - set(wanted)
    merged: list[Rule] = []
    replaced: list[str] = []
    removed: list[str] = []
    foreign: list[str] = []
    seen: set[str] = set()
    for index, rule in enumerate(current):
        rule_id = rule.get("ID")
        if rule_id in wanted and rule_id not in seen:
            seen.add(rule_id)
            merged.append(wanted[rule_id])
            if canonical_rule(rule) != canonical_rule(wanted[rule_id]):
                replaced.append(rule_id)
        elif rule_id in retired or rule_id in seen:
            removed.append(str(rule_id))
        else:
            merged.append(dict(rule))
            foreign.append(_foreign_name(rule, index))
    added = [spec.id for spec in declared if spec.id not in seen]
    merged.extend(wanted[rule_id] for rule_id in added)

    problems = [problem for spec in declared for problem in rule_problems(spec)]
    if len(merged) > MAX_LIFECYCLE_RULES:
        problems.append(
            f"bucket {bucket} would have {len(merged)} lifecycle rules ({len(foreign)} not "
            f"managed by the operator); S3 allows at most {MAX_LIFECYCLE_RULES}"
        )
    ids = [str(rule.get("ID")) for rule in merged if rule.get("ID")]
    repeated = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if repeated:
        problems.append(f"bucket {bucket}: rule id(s) {', '.join(repeated)} used more than once")

    changed = bool(replaced or added or removed)
    write = None if not changed or problems else ("put" if merged else "delete")
    return LifecyclePlan(
        bucket=bucket,
        rules=merged,
        write=write,
        replaced=replaced,
        added=added,
        removed=removed,
        foreign=foreign,
        managed=[spec.id for spec in declared],
        problems=problems,
    )
