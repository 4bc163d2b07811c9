"""Status transactions: part conditions in, the whole `.status` and the patch that gets it there.

Small pure functions in the style of CloudNativePG's status transactions, so the rules that
kubectl, Flux and Argo CD read are unit-tested without an API server:

- `set_condition` keeps `lastTransitionTime` unless the status (True/False/Unknown) changes, so a
  message that gets more precise is not reported as a new transition.
- `summarize` derives the kstatus trio from the part conditions:
  Ready      True when every part that gates readiness is True.
  Stalled    True when the spec is invalid or a part failed for a reason a human has to fix
             (a missing Secret, refused credentials, a table that does not exist, ...).
  Reconciling True when a part failed for a reason that retrying can fix (a server that does
             not answer, a lock that timed out): the operator is still working on it.
  CapacityOK is advisory: a database filling up raises its own condition, a Warning event and a
  metric, but the storage stack is still at the declared state, so Ready does not drop for it.
- `read_status` reads `.status` into the model; `build_status` assembles the complete desired
  status as the model; `status_json` is where it becomes what the API server is sent, and
  `status_patch` is the JSON merge patch from the current status to it, empty when nothing
  changed, so a reconcile that finds nothing to do sends no PATCH. The JSON holds no null
  anywhere: the CRD declares no field nullable, so the API server drops a null field on write,
  and a status that sent one would never read back equal to itself (a patch on every pass,
  and a false "CRD is old" warning).
- `dropped_fields` names the fields the API server did not store of what was sent: the only
  honest sign of a CRD older than the operator.
Turning all this into Events is domain/events.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import (
    Condition,
    LokifiStorageStatus,
    cleared,
    failed,
    raised,
    ready,
)

__all__ = [
    "ADVISORY_CONDITIONS",
    "STALLING_REASONS",
    "build_status",
    "dropped_fields",
    "read_status",
    "reported_blocks",
    "set_condition",
    "status_json",
    "status_patch",
    "summarize",
    "with_blocks",
]

# Conditions reported but not gating Ready.
ADVISORY_CONDITIONS: Final = frozenset({types.CAPACITY_OK})

# Reasons that retrying alone will not fix: Stalled rather than Reconciling.
STALLING_REASONS: Final = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.SECRET_NOT_FOUND,
        Reason.SECRET_KEY_NOT_FOUND,
        Reason.AUTHENTICATION_FAILED,
        Reason.PRIMARY_IN_RECOVERY,
        Reason.TABLE_NOT_FOUND,
        Reason.TABLE_NOT_PARTITIONED,
        Reason.PARTITION_KEY_MISMATCH,
        Reason.KEY_LACKS_PARTITION_COLUMN,
        Reason.CONFLICT,
        Reason.SETTING_REFUSED,
        Reason.ACCESS_DENIED,
        Reason.BUCKET_NOT_FOUND,
        Reason.INVALID_LIFECYCLE,
        Reason.INDEX_MISMATCH,
        Reason.CLOCK_SKEW,
        Reason.RANGE_CONFLICT,
        Reason.SECRET_CONFLICT,
        Reason.CRONJOB_CONFLICT,
        # An export refused because of what the bucket holds: a human looks at the object.
        Reason.EXPORT_CONFLICT,
        Reason.EXPORT_NOT_VERIFIED,
        # Backups are taken by CronJobs: the operator cannot retry its way out of these.
        Reason.BACKUP_MISSING,
        Reason.BACKUP_STALE,
        Reason.BACKUP_FAILED,
        Reason.BACKUP_CORRUPT,
        Reason.VERIFY_FAILED,
        Reason.RESTORE_FAILED,
    }
)

SUMMARY_ORDER: Final = (types.READY, types.RECONCILING, types.STALLED)
STATUS_KEYS: Final = tuple(LokifiStorageStatus.model_fields)
# The blocks parts and owned objects report; the rest is the reconciler's own bookkeeping.
BLOCK_KEYS: Final = tuple(
    key for key in STATUS_KEYS if key not in ("observedGeneration", "conditions", "summary")
)

log = logging.getLogger(__name__)


def set_condition(
    previous: Iterable[Condition], new: Condition, generation: int | None, now: str
) -> Condition:
    """`new` stamped with observedGeneration; lastTransitionTime kept unless status changed."""
    old = next((c for c in previous if c.type == new.type), None)
    transitioned = old is None or old.status != new.status or old.lastTransitionTime is None
    return new.model_copy(
        update={
            "observedGeneration": generation,
            "lastTransitionTime": now if transitioned or old is None else old.lastTransitionTime,
        }
    )


def _gating(parts: Sequence[Condition]) -> list[Condition]:
    return [c for c in parts if c.type not in ADVISORY_CONDITIONS]


def _failure_text(failing: Sequence[Condition]) -> str:
    if len(failing) == 1:
        return f"{failing[0].type}: {failing[0].message}".rstrip(": ")
    return f"{len(failing)} parts not ready: " + "; ".join(
        f"{c.type} ({c.reason}): {c.message}" for c in failing
    )


def summarize(parts: Sequence[Condition], invalid_spec: str | None = None) -> list[Condition]:
    """Ready, Reconciling and Stalled (unstamped) from the part conditions.

    With `invalid_spec` (the validation message) the resource is Stalled/InvalidSpec whatever
    the parts say: the operator cannot act on a spec it cannot read.
    """
    if invalid_spec is not None:
        return [
            failed(types.READY, Reason.INVALID_SPEC, invalid_spec),
            cleared(types.RECONCILING, Reason.INVALID_SPEC),
            raised(types.STALLED, Reason.INVALID_SPEC, invalid_spec),
        ]
    gating = _gating(parts)
    failing = [c for c in gating if c.status != "True"]
    stalling = [c for c in failing if c.reason in STALLING_REASONS]
    # A dry-run's pending plan is neither a failure to retry nor one to fix: Ready says it.
    retrying = [
        c for c in failing if c.reason not in STALLING_REASONS and c.reason != Reason.DRY_RUN
    ]

    if not failing:
        count = len(gating)
        ready_ = ready(
            types.READY,
            f"all {count} part conditions True" if count else "no part declared; nothing to manage",
        )
    else:
        reason = failing[0].reason if len(failing) == 1 else Reason.PART_FAILED
        if all(c.reason == Reason.DRY_RUN for c in failing):
            reason = Reason.DRY_RUN  # several parts with changes pending, nothing failing
        ready_ = failed(types.READY, reason, _failure_text(failing))

    reconciling = (
        raised(types.RECONCILING, _one_reason(retrying), "retrying: " + _failure_text(retrying))
        if retrying
        else cleared(types.RECONCILING)
    )
    stalled = (
        raised(types.STALLED, _one_reason(stalling), "needs attention: " + _failure_text(stalling))
        if stalling
        else cleared(types.STALLED)
    )
    return [ready_, reconciling, stalled]


def _one_reason(conditions: Sequence[Condition]) -> str:
    return conditions[0].reason if len(conditions) == 1 else Reason.PART_FAILED


def _order(condition: Condition) -> tuple[int, str]:
    order = SUMMARY_ORDER + tuple(types.PART_CONDITIONS)
    return (order.index(condition.type) if condition.type in order else len(order), condition.type)


def read_status(raw: Mapping[str, Any]) -> LokifiStorageStatus:
    """`.status` as the API server holds it, as the model.

    Keys this operator does not know are left out (status_patch never touches them either). A
    block that does not validate (written by another version) is left out too, as if it had
    never been reported: the part that owns it reports it afresh.
    """
    known = {key: value for key, value in raw.items() if key in STATUS_KEYS}
    try:
        return LokifiStorageStatus.model_validate(known)
    except ValidationError:
        readable = {}
        for key, value in known.items():
            try:
                LokifiStorageStatus.model_validate({key: value})
            except ValidationError:
                log.warning("status.%s is not readable by this operator version; rebuilt", key)
                continue
            readable[key] = value
        return LokifiStorageStatus.model_validate(readable)


def status_json(status: LokifiStorageStatus) -> dict[str, Any]:
    """`status` as sent to the API server: the keys set, and no null at any depth.

    The CRD declares no field nullable, so the API server drops a null field on write; a status
    that sent one would never read back equal to itself (a patch on every pass). A block of a
    subclass (a newer shape) is sent with its own fields, so a CRD that lacks them is noticed.
    """
    keys = status.model_fields_set
    out = status.model_dump(
        mode="json", exclude_none=True, include=keys - {"plan"}, serialize_as_any=True
    )
    if "plan" in keys and status.plan is not None:
        # Written as domain/change_plan.py lists it: a change touching no field has no `fields`
        # key (rather than an empty list), which is what the plan in status compares equal to.
        out["plan"] = status.plan.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    return out


def reported_blocks(status: LokifiStorageStatus) -> dict[str, Any]:
    """The blocks `status` sets (a part's report sets only those it owns and observed)."""
    return {key: getattr(status, key) for key in BLOCK_KEYS if key in status.model_fields_set}


def with_blocks(status: LokifiStorageStatus, **blocks: Any) -> LokifiStorageStatus:
    """`status` with `blocks` set as well (None values are not set)."""
    update = {key: value for key, value in blocks.items() if value is not None}
    return LokifiStorageStatus.model_validate({**reported_blocks(status), **update})


def dropped_fields(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Paths of fields present in `sent` but missing from `stored` (what a CRD pruned).

    Fields whose value differs are not listed: a changed value is another writer's doing or a
    number read back in another form, never pruning.
    """
    if isinstance(sent, Mapping):
        if not isinstance(stored, Mapping):
            return []
        out: list[str] = []
        for key, value in sent.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in stored:
                out.append(where)
            else:
                out += dropped_fields(value, stored[key], where)
        return out
    if isinstance(sent, list) and isinstance(stored, list):
        return [
            field
            for index, (a, b) in enumerate(zip(sent, stored, strict=False))
            for field in dropped_fields(a, b, f"{path}[{index}]")
        ]
    return []


def build_status(
    current: LokifiStorageStatus,
    generation: int | None,
    parts: Sequence[Condition],
    blocks: LokifiStorageStatus,
    dropped_keys: Iterable[str],
    now: str,
    invalid_spec: str | None = None,
) -> LokifiStorageStatus:
    """The complete desired `.status`.

    `parts`: this reconcile's part conditions (conditions of parts no longer in the spec are
    left out, so they disappear). `blocks`: the status blocks the parts reported (set).
    `dropped_keys`: status keys of parts no longer in the spec, removed. Keys of parts that
    failed without reporting are kept as last observed. With an invalid spec, part conditions
    and blocks are kept as they were: nothing was observed.
    """
    fields: dict[str, Any] = {
        key: getattr(current, key)
        for key in current.model_fields_set
        if key not in ("conditions", "summary")
    }
    for key in dropped_keys:
        fields.pop(key, None)
    previous = current.conditions
    if invalid_spec is None:
        fields.update(reported_blocks(blocks))
        stamped = [set_condition(previous, c, generation, now) for c in parts]
    else:
        stamped = [c for c in previous if c.type not in SUMMARY_ORDER]
    summary = summarize(stamped, invalid_spec)
    stamped += [set_condition(previous, c, generation, now) for c in summary]
    fields["conditions"] = sorted(stamped, key=_order)
    if generation is not None:
        fields["observedGeneration"] = generation
    # The printer-column summary is derived by the model from the blocks.
    return LokifiStorageStatus.model_validate(fields)


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch of `.status` (top-level keys), empty when nothing differs.

    Whole blocks are sent (merge patch replaces lists anyway); a known key absent from
    `desired` is set to null. Keys this operator does not know are never touched.
    """
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if current.get(key) != value:
            patch[key] = value
    for key in current:
        if key in STATUS_KEYS and key not in desired:
            patch[key] = None
    return patch
