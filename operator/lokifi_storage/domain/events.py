"""The Events a reconcile posts about its resource. Pure.

- `condition_events`: a Warning when a part condition becomes False (or its reason or message
  changes while False), a Normal one when it recovers. A failure that persists unchanged posts
  nothing more, as it writes nothing more.
- `action_events`: what a pass changed, as one Normal `Reconciled` Event however many actions
  it took. A first reconcile makes a resource's partitions, Secret and CronJobs in one pass;
  one Event per action cost the API server a write per partition (8 of a new resource's 11
  writes were Events). Actions of one kind are folded into a count naming the first
  few; every action is also in the operator's log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import Condition

__all__ = [
    "GROUP_NAMED",
    "MESSAGE_LIMIT",
    "EventSpec",
    "action_events",
    "condition_events",
    "fit_message",
]

# The API server refuses an Event whose message passes 1,024 bytes (not characters: a message
# with one non-ASCII character at 1,024 characters is refused whole).
MESSAGE_LIMIT: Final = 1024
# Objects named of a folded kind of action; the rest are counted.
GROUP_NAMED: Final = 4


@dataclass(frozen=True)
class EventSpec:
    """One Event to post about the resource: Normal or Warning, a reason, a message."""

    type: str
    reason: str
    message: str


def action_events(actions: Sequence[str], reason: str = Reason.RECONCILED) -> list[EventSpec]:
    """One Normal Event saying what `actions` did, none when there are none.

    Actions of one kind (their first two words: "create partition", "created CronJob") that
    come more than once are folded into `<kind> xN: <object>, ...` naming the first few, so
    a pass that made 96 months still shows the Secret and CronJobs it made beside them."""
    if len(actions) <= 1:
        return [EventSpec("Normal", reason, fit_message(action)) for action in actions]
    groups: dict[str, list[str]] = {}
    for action in actions:
        groups.setdefault(" ".join(action.split()[:2]), []).append(action)
    said: list[str] = []
    for kind, done in groups.items():
        if len(done) == 1:
            said += done
            continue
        objects = _objects(kind, done)
        named = ", ".join(objects[:GROUP_NAMED])
        if len(objects) > GROUP_NAMED:
            named += f", and {len(objects) - GROUP_NAMED} more"
        said.append(f"{kind} x{len(done)}: {named}")
    return [EventSpec("Normal", reason, fit_message(f"{len(actions)} changes: " + "; ".join(said)))]


def fit_message(text: str) -> str:
    """`text` within MESSAGE_LIMIT bytes of UTF-8, ending in "..." when it was cut."""
    data = text.encode()
    if len(data) <= MESSAGE_LIMIT:
        return text
    return data[: MESSAGE_LIMIT - 3].decode(errors="ignore") + "..."


def _objects(kind: str, done: Sequence[str]) -> list[str]:
    """What each action of `kind` acted on: the word after the kind, or all after it when that
    word is the same in every one (`CONFIG SET maxmemory 1gb on <node>`)."""
    rests = [action[len(kind) :].strip() for action in done]
    firsts = [rest.split(" ", 1)[0] for rest in rests]
    return rests if len(set(firsts)) == 1 else firsts


def condition_events(
    previous: Iterable[Condition], current: Iterable[Condition]
) -> list[EventSpec]:
    """Warning for each part condition that became (or changed while) False; Normal on recovery.

    Only part conditions and Stalled/InvalidSpec are turned into events: Ready and Reconciling
    repeat what the parts say.
    """
    before = {c.type: c for c in previous}
    events: list[EventSpec] = []
    for cond in current:
        kind = cond.type
        if kind in (types.READY, types.RECONCILING):
            continue
        if kind == types.STALLED and cond.reason != Reason.INVALID_SPEC:
            continue
        old = before.get(kind)
        failing = cond.status == "True" if kind == types.STALLED else cond.status != "True"
        was_failing = old is not None and (
            old.status == "True" if kind == types.STALLED else old.status != "True"
        )
        if failing:
            if (
                old is None
                or not was_failing
                or old.reason != cond.reason
                or old.message != cond.message
            ):
                events.append(EventSpec("Warning", cond.reason, f"{kind}: {cond.message}"))
        elif was_failing:
            events.append(EventSpec("Normal", cond.reason, f"{kind} recovered: {cond.message}"))
    return events
