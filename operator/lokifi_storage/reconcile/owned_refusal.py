"""Why an owned object was not written: the refusals the connection Secret and the CronJobs share.

An object of the name this resource would write that the resource does not control is never
adopted or changed: adopting it would hand it to the garbage collector with the resource, and
changing it would overwrite what someone else keeps there. The refusal names who controls it and
the fix. One case is only a matter of time: the object still belongs to a deleted LokifiStorage
of the same name (the manifest was applied again right after a delete). Kubernetes' garbage
collector removes it soon, so that refusal is retried with backoff instead of stalling.

A write to an object read before carries its uid (`pinned`), so it never lands on another
object made under the name since the read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.coordinates import KIND
from lokifi_storage.builders.labels import Owner
from lokifi_storage.clients.errors import ClientError, Refused

__all__ = [
    "OwnedKind",
    "OwnedObjectRefusedError",
    "controller_uid",
    "forbidden_is_refusal",
    "not_ours",
    "pinned",
]


class OwnedObjectRefusedError(ClientError):
    """An owned object could not be written: a human has to fix it, or (reason
    GarbageCollectionPending) the garbage collector."""


def _controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = obj.get("metadata", {}).get("ownerReferences", [])
    return next((ref for ref in refs if ref.get("controller")), None)


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    ref = _controller(obj)
    return None if ref is None else str(ref.get("uid"))


def pinned(obj: Mapping[str, Any], uid: str) -> dict[str, Any]:
    """`obj` to apply only to the object `uid`: the API server refuses (409) the write when the
    name now belongs to another object."""
    return {**obj, "metadata": {**obj["metadata"], "uid": uid}}


@dataclass(frozen=True)
class OwnedKind:
    """A kind of owned object: what a conflict on one of its names is called, and its fix."""

    kind: str
    reason: str
    fix: str


def not_ours(
    what: OwnedKind, name: str, observed: Mapping[str, Any] | None, owner: Owner
) -> OwnedObjectRefusedError:
    """The refusal to write the `what` named `name`, which `owner` does not control
    (`observed`: as read; None: it was created by someone else between the read and the
    write). An object of the deleted resource of the same name gets GarbageCollectionPending
    instead."""
    kind = what.kind
    ref = None if observed is None else _controller(observed)
    if ref is not None and ref.get("kind") == KIND and ref.get("name") == owner.name:
        return OwnedObjectRefusedError(
            f"{kind} {name!r} still belongs to the deleted {KIND} {owner.name!r} of the same "
            f"name (uid {ref.get('uid')}); Kubernetes' garbage collector removes it, and this "
            "resource makes its own then (retried with backoff)",
            reason=Reason.GARBAGE_COLLECTION_PENDING,
        )
    if observed is None:
        whose = "was created by someone else while the operator wrote it"
    elif ref is None:
        whose = (
            f"exists and has no controlling owner (the operator never adopts a {kind} it did "
            "not create)"
        )
    else:
        whose = f"is controlled by {ref.get('kind')} {ref.get('name')!r}"
    return OwnedObjectRefusedError(
        f"{kind} {name!r} {whose}; it was left unchanged. {what.fix}", reason=what.reason
    )


@contextmanager
def forbidden_is_refusal() -> Iterator[None]:
    """A 403 (a missing RBAC rule, which only a human can add) as a refusal naming the fix."""
    try:
        yield
    except Refused as error:
        if error.reason != "Forbidden":
            raise
        raise OwnedObjectRefusedError(
            f"{error.message}; grant it to the operator's ServiceAccount "
            "(the Helm chart's templates/rbac.yaml lists every rule the operator needs)",
            reason=Reason.FORBIDDEN,
        ) from error
