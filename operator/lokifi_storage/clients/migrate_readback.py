"""Reading a migrated table back for `migrate sqlite`'s verify: its row count and digest.

The rows come back as COPY TO prints them, so each line is already the text the source side
hashed (clients/sqlite_copy.py) and the server only reads and prints. Apart from
clients/migrate_target.py because it takes the COPY's data from libpq directly, past psycopg's
own reading, which is the one subtle part of the read-back.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Any

import psycopg

from lokifi_storage.clients.migrate_sql import copy_out_statement, stamp_kinds
from lokifi_storage.clients.sqlite_copy import digest_lines
from lokifi_storage.domain.migrate_schema import TargetColumn
from lokifi_storage.domain.partitions.catalog import QName

__all__ = ["read_back"]


def read_back(
    conn: psycopg.Connection[Any], relation: QName, columns: Sequence[TargetColumn]
) -> tuple[int, int]:
    """Row count and digest of one leaf table, from its rows as COPY TO prints them: the
    server only reads and prints (in C, beside the hashing here), and each line is already
    the text the source side hashed.

    The rows libpq has already received are taken without a wait each (psycopg's row
    iterator goes through its wait loop for every row: a third of the command's CPU at
    500 000 rows); only when none is buffered does psycopg wait for the next one."""
    count = total = 0
    stamps = stamp_kinds(columns)
    lines: list[bytes | bytearray | memoryview] = []
    with conn.cursor() as cur, cur.copy(copy_out_statement(relation, columns)) as copy:
        pgconn = conn.pgconn
        while True:
            size, data = pgconn.get_copy_data(1)  # 1: never waits
            line: bytes | bytearray | memoryview = data
            if size == 0:  # nothing received yet: psycopg waits (and ends the COPY)
                line = copy.read()
                if not line:
                    break
            elif size < 0:  # the end, already received
                _end_copy_out(pgconn, conn.info.encoding)
                break
            lines.append(line)
            if len(lines) == 4096:
                n, digest = digest_lines(lines, stamps)
                count, total = count + n, total + digest
                lines.clear()
    n, digest = digest_lines(lines, stamps)
    return count + n, total + digest


def _end_copy_out(pgconn: psycopg.pq.abc.PGconn, encoding: str) -> None:
    """After the end of a COPY TO taken from libpq directly: its final results, all of them
    (the session is idle again), as psycopg's own reading would fetch them; an error the
    server raised (a cancelled statement) is raised here."""
    error: psycopg.Error | None = None
    while True:
        while pgconn.is_busy():
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK and error is None:
            error = psycopg.errors.error_from_result(result, encoding=encoding)
    if error is not None:
        raise error
