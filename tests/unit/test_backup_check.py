"""Counting rows in pg_restore's SQL output: the archive verification without a database."""

from __future__ import annotations

from lokifi_storage.jobs.backup_check import copy_row_counts


def test_copy_blocks_of_pg_restore_output_are_counted_per_table() -> None:
    script = [
        b"SET statement_timeout = 0;\n",
        b"COPY public.ai_threads (id, title) FROM stdin;\n",
        b"1\tone\\nline\n",
        b"2\ttwo\n",
        b"\\.\n",
        b'COPY archive."Odd Name" (k, v) FROM stdin;\n',
        b"a\t1\n",
        b"\\.\n",
        b"COPY public.empty (id) FROM stdin;\n",
        b"\\.\n",
    ]
    assert copy_row_counts(script) == {
        "public.ai_threads": 2,
        "archive.Odd Name": 1,
        "public.empty": 0,
    }
