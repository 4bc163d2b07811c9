"""Existing vs desired owned objects (the CronJobs, the connection Secret) -> what to write.

Two questions decide whether an owned object needs a write:

1. Did the operator's intent change? Every desired object carries a hash of itself in an
   annotation (`with_desired_hash`). A different hash means the spec changed what the operator
   wants (a new schedule, a removed env var, another image): apply it. Server-side apply then
   also removes fields the operator set before and no longer sets, which a containment check
   alone could never notice.
2. Did someone else change it (drift)? The API server fills in defaults (`suspend: false`,
   `terminationMessagePath`, ...) and other tools may add fields, so an observed object never
   equals the desired one byte for byte. The check is "desired is contained in observed": every
   field the operator sets must be present with the same value; lists the API server merges by
   key (containers and env by name, volumes by name, mounts by path, owners by uid) are matched
   by that key, other lists must be equal. An admin's `kubectl edit` of the schedule is repaired;
   an extra env var an admin added is left alone, as server-side apply would leave it.

Both hold -> no write at all. Objects are matched by name (builders/names.py is
deterministic); an observed object no desired object names is deleted, which is how a removed
schedule loses its CronJob. Callers pass only objects this resource owns (ownerReference uid).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "DESIRED_HASH_ANNOTATION",
    "OwnedPlan",
    "contained_in",
    "desired_hash",
    "needs_write",
    "plan_owned_objects",
    "with_desired_hash",
]

DESIRED_HASH_ANNOTATION: Final = "storage.lokifi.ai/desired-hash"

# Lists whose elements the API server merges by a key (strategic merge / server-side apply).
_MERGE_KEYS: Final = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ownerReferences": "uid",
    "ports": "containerPort",
}


def desired_hash(obj: Mapping[str, Any]) -> str:
    """sha256 of the object's canonical JSON, without the hash annotation itself."""
    meta = dict(obj.get("metadata", {}))
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != DESIRED_HASH_ANNOTATION
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def with_desired_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with its desired-hash annotation set (a new dict; `obj` is not changed)."""
    meta = dict(obj.get("metadata", {}))
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        DESIRED_HASH_ANNOTATION: desired_hash(obj),
    }
    return {**obj, "metadata": meta}


def contained_in(desired: Any, observed: Any, list_key: str | None = None) -> bool:
    """True when every field of `desired` is in `observed` with an equal value (recursively)."""
    if isinstance(desired, Mapping):
        if not isinstance(observed, Mapping):
            return False
        return all(
            key in observed and contained_in(value, observed[key], _MERGE_KEYS.get(str(key)))
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(observed, list):
            return False
        if list_key is not None and all(isinstance(d, Mapping) and list_key in d for d in desired):
            by_key = {o.get(list_key): o for o in observed if isinstance(o, Mapping)}
            return all(
                d[list_key] in by_key and contained_in(d, by_key[d[list_key]]) for d in desired
            )
        if len(desired) != len(observed):
            return False
        return all(contained_in(d, o) for d, o in zip(desired, observed, strict=True))
    return bool(desired == observed)


def _name(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an object the operator decides: labels, annotations, owners, spec, data."""
    meta = obj.get("metadata", {})
    out: dict[str, Any] = {
        "metadata": {
            key: meta[key] for key in ("labels", "annotations", "ownerReferences") if key in meta
        }
    }
    for key in ("spec", "data", "type"):
        if key in obj:
            out[key] = obj[key]
    return out


def needs_write(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    """True when `observed` is absent, carries another desired-hash, or drifted from `desired`."""
    if observed is None:
        return True
    return not contained_in(_comparable(desired), observed)


@dataclass(frozen=True)
class OwnedPlan:
    """Objects to create, to patch (desired bodies) and names to delete; empty = no writes."""

    create: list[dict[str, Any]] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.patch or self.delete)


def plan_owned_objects(
    desired: Sequence[Mapping[str, Any]], observed: Iterable[Mapping[str, Any]]
) -> OwnedPlan:
    """Create what is missing, patch what changed or drifted, delete what is no longer desired.

    `desired` objects should carry their desired-hash (`with_desired_hash`); results are sorted
    by name so the plan (and the events it produces) is deterministic.
    """
    observed_by_name = {_name(obj): obj for obj in observed}
    desired_names = {_name(obj) for obj in desired}
    create: list[dict[str, Any]] = []
    patch: list[dict[str, Any]] = []
    for obj in sorted(desired, key=_name):
        current = observed_by_name.get(_name(obj))
        if current is None:
            create.append(dict(obj))
        elif needs_write(obj, current):
            patch.append(dict(obj))
    delete = sorted(name for name in observed_by_name if name not in desired_names)
    return OwnedPlan(create=create, patch=patch, delete=delete)
