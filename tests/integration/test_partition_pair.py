"""New months made several at a time (clients/postgres/partition_pair.py), on the stack's
primary: up to four sessions make months, no more spares are taken than the pool's bound per
server leaves free, a month that fails is reported as on one session and leaves nothing half
made, a kill of every session leaves whole months only, and with no connection to spare one
session makes them all."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from partitionkit import (
    NOW,
    create_messages_table,
    execute,
    insert_messages,
    month_start,
    partition_db,
    partitions_of,
    query,
    table_spec,
)
from poolkit import bounded_pools

from example_indexes import SEARCH_INDEX, THREAD_INDEX
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.partition_pair import MONTH_SESSIONS
from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.reconcile.partitions import PartitionOutcome, reconcile_tables
from stackfixtures import PgDatabase

SPEC = table_spec(premake=23, indexes=[THREAD_INDEX, SEARCH_INDEX])


def spy_on_spare(db: PartitionDatabase) -> list[PartitionDatabase | None]:
    """Record the spare sessions `db` is given (None: none was free)."""
    given: list[PartitionDatabase | None] = []
    spare = db.spare_session

    @contextmanager
    def recorded() -> Iterator[PartitionDatabase | None]:
        with spare() as helper:
            given.append(helper)
            yield helper

    db.spare_session = recorded
    return given


def one_session(db: PartitionDatabase) -> None:
    def none() -> AbstractContextManager[PartitionDatabase | None]:
        return _nothing()

    db.spare_session = none


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def unattached_tables(url: str) -> list[str]:
    """Tables named like the operator's months that are not a partition of anything."""
    rows = query(
        url,
        "SELECT relname FROM pg_class WHERE relname LIKE 'ai_messages_p%'"
        " AND relkind = 'r' AND NOT relispartition ORDER BY 1",
    )
    return [r[0] for r in rows]


def attached_months(session: PartitionDatabase) -> int:
    """Months this session attached itself (its own record, before it joins the client's)."""
    return sum(w.startswith("ALTER TABLE") and "ATTACH" in w for w in session.writes)


def test_months_are_made_on_four_sessions_each_whole(pg_database: PgDatabase) -> None:
    create_messages_table(pg_database)
    with partition_db(pg_database) as db:
        given = spy_on_spare(db)
        outcome = reconcile_tables(db, [SPEC], NOW)
        own_pid = db.conn.info.backend_pid
    assert not outcome.failures, outcome.failures
    assert MONTH_SESSIONS == 4
    helpers = [helper for helper in given if helper is not None]
    assert len(given) == len(helpers) == 3  # three spares, each its own server session
    assert len({own_pid, *(h.conn.info.backend_pid for h in helpers)}) == 4
    # the client's record holds every session's writes: 24 months and DEFAULT
    assert sum("ATTACH PARTITION" in w for w in db.writes) == 25
    by_helpers = [attached_months(helper) for helper in helpers]
    assert sum(by_helpers) < 24  # the reconcile's own session made months too
    assert any(by_helpers)  # and so did a spare (each takes the next month when it is free)
    names = [name for name, _ in partitions_of(pg_database, "ai_messages")]
    assert len(names) == 25
    indexes = query(
        pg_database,
        "SELECT count(*) FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indrelid"
        " WHERE i.inhparent = 'ai_messages'::regclass AND x.indisvalid",
    )
    assert indexes == [(50,)]
    assert unattached_tables(pg_database) == []


def test_spares_are_taken_only_while_the_bound_per_server_leaves_some_free(
    pg_database: PgDatabase,
) -> None:
    """With room for three connections, the reconcile's own and two spares make the months:
    the third spare is not waited for, and the pool never opens a fourth."""
    create_messages_table(pg_database)
    with (
        bounded_pools(max_per_server=3, wait_seconds=0.2) as pools,
        partition_db(pg_database) as db,
    ):
        given = spy_on_spare(db)
        outcome = reconcile_tables(db, [SPEC], NOW)
        assert pools.open_connections(db.target.host, db.target.port) == 3
    assert not outcome.failures, outcome.failures
    # the spares are asked for at once, so which of the three asks got none varies
    assert sorted(helper is not None for helper in given) == [False, True, True]
    assert len(partitions_of(pg_database, "ai_messages")) == 25
    assert unattached_tables(pg_database) == []


def whole_months_with_valid_indexes(url: str) -> int:
    """Partitions of ai_messages that have both indexes, valid."""
    rows = query(
        url,
        "SELECT count(*) FROM (SELECT i.inhrelid FROM pg_inherits i"
        " JOIN pg_index x ON x.indrelid = i.inhrelid AND x.indisvalid"
        " WHERE i.inhparent = 'ai_messages'::regclass GROUP BY 1 HAVING count(*) = 2) t",
    )
    return int(rows[0][0])


def failing_reconcile(url: str, *, several: bool) -> PartitionOutcome:
    """A month whose index name is taken by a table made by hand: its CREATE INDEX fails."""
    execute(url, "CREATE TABLE idx_ai_messages_user_thread_time_p2026_09 (x int)")
    with partition_db(url) as db:
        if not several:
            one_session(db)
        return reconcile_tables(db, [SPEC], NOW)


def test_a_month_that_fails_is_reported_as_on_one_session(pg_database: PgDatabase) -> None:
    create_messages_table(pg_database)
    paired = failing_reconcile(pg_database, several=True)
    made_paired = {name for name, _ in partitions_of(pg_database, "ai_messages")}
    assert unattached_tables(pg_database) == []  # nothing half made
    assert whole_months_with_valid_indexes(pg_database) == len(made_paired)
    assert "ai_messages_p2026_09" not in made_paired

    execute(pg_database, "DROP TABLE ai_messages CASCADE")
    execute(pg_database, "DROP TABLE idx_ai_messages_user_thread_time_p2026_09")
    create_messages_table(pg_database)
    alone = failing_reconcile(pg_database, several=False)
    made_alone = {name for name, _ in partitions_of(pg_database, "ai_messages")}

    assert paired.failures.keys() == alone.failures.keys() == {"ai_messages"}
    assert paired.failures["ai_messages"].message == alone.failures["ai_messages"].message
    assert "ai_messages_p2026_09" in paired.failures["ai_messages"].message
    paired_condition, alone_condition = paired.report().condition, alone.report().condition
    assert (paired_condition.status, paired_condition.reason, paired_condition.message) == (
        alone_condition.status,
        alone_condition.reason,
        alone_condition.message,
    )
    # Alone: the months before the failing one. On several sessions: those too, and maybe a
    # few after it that the other sessions started while the failing month was being made,
    # each a whole month of its own. Once the failure is known no month is started, so the run
    # stops well short of the 15 months after the failing one.
    assert made_alone <= made_paired
    after = sorted(made_paired - made_alone)
    assert all(name > "ai_messages_p2026_09" for name in after), after
    assert len(after) < 15

    execute(pg_database, "DROP TABLE idx_ai_messages_user_thread_time_p2026_09")
    with partition_db(pg_database) as db:
        again = reconcile_tables(db, [SPEC], NOW)
    assert not again.failures, again.failures
    assert len(partitions_of(pg_database, "ai_messages")) == 25


def test_with_no_connection_to_spare_one_session_makes_every_month(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database)
    with (
        bounded_pools(max_per_server=1, wait_seconds=0.2) as pools,
        partition_db(pg_database) as db,
    ):
        given = spy_on_spare(db)
        outcome = reconcile_tables(db, [SPEC], NOW)
        assert pools.open_connections(db.target.host, db.target.port) == 1
    assert not outcome.failures, outcome.failures
    assert given == [None] * (MONTH_SESSIONS - 1)  # each ask got none, none waited
    assert len(partitions_of(pg_database, "ai_messages")) == 25


def test_rows_waiting_in_default_are_moved_on_one_session(pg_database: PgDatabase) -> None:
    """Months with rows to move lock the parent first: they are not paired."""
    create_messages_table(pg_database, with_default=True)
    insert_messages(pg_database, month_start(2026, 1), month_start(2026, 3), 200)
    with partition_db(pg_database) as db:
        given = spy_on_spare(db)
        outcome = reconcile_tables(db, [table_spec(premake=1)], NOW)
    assert not outcome.failures, outcome.failures
    assert given == []
    assert query(pg_database, "SELECT count(*) FROM ONLY ai_messages_default") == [(0,)]
    assert query(pg_database, "SELECT count(*) FROM ai_messages") == [(200,)]


def test_every_session_killed_half_way_leaves_whole_months_and_the_next_pass_finishes(
    pg_database: PgDatabase,
) -> None:
    """The server ends every session while months are being made (as a crash would): every
    month is there whole or not at all, and the next reconcile makes the rest."""
    create_messages_table(pg_database)
    spec = table_spec(premake=47, indexes=[THREAD_INDEX, SEARCH_INDEX])
    ended: list[PartitionOutcome | ClientError] = []

    def run() -> None:
        try:
            with partition_db(pg_database) as db:
                ended.append(reconcile_tables(db, [spec], NOW))
        except ClientError as error:  # the next look, on a connection that is gone
            ended.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        for _ in range(1000):
            if len(partitions_of(pg_database, "ai_messages")) >= 4:
                break
            time.sleep(0.005)
        query(
            pg_database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %(app)s",
            {"app": "lokifi-storage-operator"},
        )
    finally:
        thread.join()
    (killed,) = ended
    assert isinstance(killed, ClientError) or killed.failures
    assert len(partitions_of(pg_database, "ai_messages")) < 49
    assert unattached_tables(pg_database) == []  # nothing half made
    with partition_db(pg_database) as db:
        again = reconcile_tables(db, [spec], NOW)
    assert not again.failures, again.failures
    assert len(partitions_of(pg_database, "ai_messages")) == 49  # 48 months and DEFAULT
    assert unattached_tables(pg_database) == []
