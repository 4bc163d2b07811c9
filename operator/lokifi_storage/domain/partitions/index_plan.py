"""Which index actions bring a table (partitioned or not) to the indexes of its spec.

On a partitioned table nothing here takes a long lock: the parent gets its index ON ONLY
(instant, INVALID for now), every leaf partition gets its own index CONCURRENTLY, and each is
ATTACHed to the parent's; PostgreSQL marks the parent's index valid once every partition has
one. Sub-partitioned partitions repeat the pattern one level down. Whatever a crash leaves
behind is recognised: an INVALID leaf index from an interrupted concurrent build is dropped and
rebuilt; a valid index that was built but never attached is attached.

Indexes are matched to the spec by inheritance (which parent index a child is attached to), not
by name, so indexes PostgreSQL created itself on ATTACH count as present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.partitions.actions import (
    Action,
    AttachIndex,
    BuildIndex,
    CreateParentIndex,
    DropInvalidIndex,
)
from lokifi_storage.domain.partitions.catalog import ObservedRelation, QName
from lokifi_storage.domain.partitions.index_defs import (
    IndexDef,
    derived_name,
    matches,
    relation_suffix,
)

__all__ = ["IndexPlan", "Problem", "plan_indexes"]


@dataclass(frozen=True)
class Problem:
    """Something the planner cannot fix by itself: a condition reason and what to do."""

    reason: str
    message: str


@dataclass
class IndexPlan:
    actions: list[Action] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def plan_indexes(table: QName, root: ObservedRelation, indexes: tuple[IndexDef, ...]) -> IndexPlan:
    """Actions that give `root` (a table or an archive table) and all its partitions `indexes`."""
    plan = IndexPlan()
    for index in indexes:
        existing = root.index_named(index.name)
        qname = QName(root.qname.schema, index.name)
        if existing is not None and not matches(index, existing):
            plan.problems.append(
                Problem(
                    Reason.INDEX_MISMATCH,
                    f"index {qname} exists with another definition; drop it "
                    "(DROP INDEX CONCURRENTLY) to let the operator rebuild it",
                )
            )
            continue
        if not root.partitioned:
            if existing is None:
                plan.actions.append(BuildIndex(table, root.qname, index, index.name))
            elif not existing.valid:
                plan.actions.append(DropInvalidIndex(table, qname))
                plan.actions.append(BuildIndex(table, root.qname, index, index.name))
            continue
        if existing is None:
            plan.actions.append(CreateParentIndex(table, root.qname, index, index.name))
        for child in root.children:
            _ensure_child(plan, table, child, index, qname)
    return plan


def _ensure_child(
    plan: IndexPlan, table: QName, rel: ObservedRelation, index: IndexDef, parent_index: QName
) -> None:
    attached = rel.index_attached_to(parent_index)
    name = derived_name(index.name, relation_suffix(table.name, rel.qname.name))
    own = QName(rel.qname.schema, name)
    if not rel.partitioned:
        if attached is not None:
            if not attached.valid:
                plan.problems.append(
                    Problem(
                        Reason.INDEX_MISMATCH,
                        f"index {rel.qname.schema}.{attached.name} on {rel.qname} is INVALID "
                        f"but attached; run REINDEX INDEX CONCURRENTLY on it",
                    )
                )
            return
        existing = rel.index_named(name)
        if existing is None:
            plan.actions.append(BuildIndex(table, rel.qname, index, name))
        elif not existing.valid:
            plan.actions.append(DropInvalidIndex(table, own))
            plan.actions.append(BuildIndex(table, rel.qname, index, name))
        elif not matches(index, existing):
            plan.problems.append(
                Problem(
                    Reason.INDEX_MISMATCH,
                    f"index {own} exists with another definition than {index.name}; drop it",
                )
            )
            return
        plan.actions.append(AttachIndex(table, parent_index, own))
        return
    # A sub-partitioned partition: its own partitioned index, one level down.
    if attached is not None:
        sub_parent = QName(rel.qname.schema, attached.name)
    else:
        existing = rel.index_named(name)
        if existing is None:
            plan.actions.append(CreateParentIndex(table, rel.qname, index, name))
        elif not matches(index, existing):
            plan.problems.append(
                Problem(
                    Reason.INDEX_MISMATCH,
                    f"index {own} exists with another definition than {index.name}; drop it",
                )
            )
            return
        sub_parent = own
    for child in rel.children:
        _ensure_child(plan, table, child, index, sub_parent)
    if attached is None:
        plan.actions.append(AttachIndex(table, parent_index, sub_parent))
