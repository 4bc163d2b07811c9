"""A table's actions applied in order, with runs of new months made on up to four connections.

Each new partition is a transaction of its own: a failure undoes that month only, and a crash
leaves either the whole month or nothing of it. Most of that transaction builds the new table
and its indexes, which nobody else can see; when no rows are expected in DEFAULT, the parent's
lock is taken only after them, for the move and the ATTACH (domain/partitions/steps.py). So
several sessions make such months at once and only take turns for the lock. The other sessions
are spare connections of the pool, each taken only if one is free at that moment (the bound per
server holds; none free: one session makes them all), joining the work as soon as it is open
(the reconcile's own session starts at once), and given back when the run ends.

Why four sessions (`MONTH_SESSIONS`): a month's transaction is not all CPU. Each B-tree build
(the month's own index and its TOAST table's) ends with an fsync of the new file, and creating
the month's five files waits on the file system; with two sessions the server's CPUs still sat
idle for part of each month. On the two-CPU machine of bench/RESULTS.md, in rounds of
bench/partitions_partman.py taken in turns under the same load, four sessions made 120 months
1.37x as fast as pg_partman (median of 34 rounds, 0.85-3.27x), two sessions 1.16x (30 rounds,
0.52-2.26x), three 1.01x (14) and eight 1.21x (4): the rounds are noisy; four was best. More
sessions also cost more CPU in all: each one reads every other one's catalog invalidations.

A failure is what it would be on one session: the first failing month in plan order is raised,
with the error its step raised, and no further month is started; the months the other sessions
had in flight (one each at most) finish (each is a whole transaction of its own) and are
reported done.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress

from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.domain.partitions.actions import Action, CreatePartition

__all__ = ["MONTH_SESSIONS", "apply_actions"]

#: sessions making one run of new months at most: the reconcile's own and spares of the pool
MONTH_SESSIONS = 4


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
        if len(run) > 1 and MONTH_SESSIONS > 1:
            _at_once(db, min(MONTH_SESSIONS, len(run)) - 1, run, before_each, done)
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


def _at_once(
    db: PartitionDatabase,
    spares: int,
    run: list[Action],
    before_each: Callable[[str], None],
    done: list[str],
) -> None:
    """`run` made by `db` and up to `spares` spare sessions together, each taking the next
    month in plan order. `db` starts at once; each spare joins as soon as its connection is
    open (opening one costs a new server process when the pool has none idle, which the
    months already under way do not wait for), or not at all if the pool has none free."""
    todo = deque(enumerate(run))
    failures: list[tuple[int, BaseException]] = []
    joined: list[PartitionDatabase] = []
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

    def spare() -> None:
        # A spare that cannot be had (none free, a failed connect or session setting) only
        # leaves the months to the other sessions.
        with suppress(Exception), db.spare_session() as helper:
            if helper is None:
                return
            with lock:
                if failures or not todo:
                    return
                joined.append(helper)
                db.helpers.append(helper)
            work(helper)

    others = [
        threading.Thread(target=spare, name=f"partition-months-{n}") for n in range(1, spares + 1)
    ]
    for other in others:
        other.start()
    try:
        work(db)
    finally:
        for other in others:
            other.join()
        for helper in joined:
            db.helpers.remove(helper)
            db.statements.extend(helper.statements)
            db.writes.extend(helper.writes)
    if failures:
        raise min(failures, key=lambda f: f[0])[1]
