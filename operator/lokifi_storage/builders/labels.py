"""Labels on every object the operator creates, and the owner reference that ties it to the
resource.

The `app.kubernetes.io/*` labels are the recommended ones, so `kubectl get all -l` and
dashboards group our objects; `storage.lokifi.ai/component` tells a backup CronJob from the
vacuum one. Ownership itself is decided by ownerReferences (uid), never by labels: labels are
for humans and selectors, and a label value is capped at 63 characters where a resource name
is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from lokifi_storage.api.coordinates import API_VERSION, KIND
from lokifi_storage.builders.names import bounded_name

__all__ = [
    "COMPONENT_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "Owner",
    "labels_for",
    "owner_reference",
]

MANAGED_BY: Final = "lokifi-storage-operator"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "storage.lokifi.ai/component"
SCHEDULE_LABEL: Final = "storage.lokifi.ai/schedule"

_LABEL_LIMIT = 63
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Owner:
    """The LokifiStorage that owns an object: enough to build an ownerReference."""

    namespace: str
    name: str
    uid: str


def label_value(text: str) -> str:
    """A valid label value: allowed characters only, at most 63, alphanumeric at both ends."""
    cleaned = _NOT_LABEL.sub("-", text)
    return bounded_name(cleaned, _LABEL_LIMIT).strip("-_.")


def labels_for(owner: Owner, component: str, schedule: str | None = None) -> dict[str, str]:
    """The labels of one owned object."""
    labels = {
        NAME_LABEL: "lokifi-storage",
        INSTANCE_LABEL: label_value(owner.name),
        MANAGED_BY_LABEL: MANAGED_BY,
        COMPONENT_LABEL: component,
    }
    if schedule is not None:
        labels[SCHEDULE_LABEL] = label_value(schedule)
    return labels


def owner_reference(owner: Owner) -> dict[str, object]:
    """A controller ownerReference: the garbage collector deletes the object with its owner.

    blockOwnerDeletion makes foreground deletion of the LokifiStorage wait for its objects.
    """
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
