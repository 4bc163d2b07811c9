"""A table's actions applied in order, with runs of new months made on two connections.

Each new partition is a transaction of its own: a failure undoes that month only, and a crash
leaves either the whole month or nothing of it. Most of that transaction builds the new table
and its indexes, which nobody else can see; when no rows are expected in DEFAULT, the parent's
lock is taken only after them, for the move and the ATTACH (domain/partitions/steps.py). So two
sessions make two such months at once and only take turns for the lock. The second session is
a spare connection of the pool, taken only if one is free at that moment (the bound per server
holds; none free: one session makes them all), and given back when the run ends.

A failure is what it would be on one session: the first failing month in plan order is raised,
with the error its step raised, and no further month is started; the month the other session
had in flight finishes (it is a whole transaction of its own) and is reported done.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.domain.partitions.actions import Action, CreatePartition

__all__ = ["apply_actions"]


def apply_actions(
    db: PartitionDatabase,
    actions: Sequence[Action],
    before_each: Callable[[str], None],
    done: list[str],
) -> None:
    """Apply `actions` in order; each one applied is described in `done`. `before_each` sees
    each description first (the fence) and may raise to stop. Raises the first failure."""
    i = 0
    while i < len(actions):
        run = _independent_months(actions, i)
        i += len(run)
        if len(run) > 1:
            with db.spare_session() as helper:
                if helper is not None:
                    _two_at_a_time(db, helper, run, before_each, done)
                    continue
        for action in run:
            before_each(action.describe())
            db.apply(action)
            done.append(action.describe())


def _independent_months(actions: Sequence[Action], start: int) -> list[Action]:
    """The run of new partitions from `start` that may be made in any order at once: of one
    parent, none of them DEFAULT, none moving rows the plan knows of."""
    first = actions[start]
    if not _pairable(first):
        return [first]
    assert isinstance(first, CreatePartition)
    run: list[Action] = [first]
    for action in actions[start + 1 :]:
        if not _pairable(action):
            break
        assert isinstance(action, CreatePartition)
        if (action.parent, action.move_from) != (first.parent, first.move_from):
            break
        run.append(action)
    return run


def _pairable(action: Action) -> bool:
    return (
        isinstance(action, CreatePartition)
        and not action.partition.bound.is_default
        and action.rows_to_move == 0
    )


def _two_at_a_time(
    db: PartitionDatabase,
    helper: PartitionDatabase,
    run: list[Action],
    before_each: Callable[[str], None],
    done: list[str],
) -> None:
    todo = deque(enumerate(run))
    failures: list[tuple[int, BaseException]] = []
    lock = threading.Lock()

    def work(session: PartitionDatabase) -> None:
        while True:
            with lock:
                if failures or not todo:
                    return
                index, action = todo.popleft()
            try:
                before_each(action.describe())
                session.apply(action)
            except BaseException as error:  # re-raised below, in this thread
                with lock:
                    failures.append((index, error))
                return
            with lock:
                done.append(action.describe())

    db.helpers.append(helper)
    other = threading.Thread(target=work, args=(helper,), name="partition-pair")
    other.start()
    try:
        work(db)
    finally:
        other.join()
        db.helpers.remove(helper)
        db.statements.extend(helper.statements)
        db.writes.extend(helper.writes)
    if failures:
        raise min(failures, key=lambda f: f[0])[1]
