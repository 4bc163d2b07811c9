"""Migration progress in a Job log: plain timestamped lines with rows/s and ETA, no bar."""

from __future__ import annotations

import io

from lokifi_storage.jobs.migrate_progress import RowProgress
from lokifi_storage.jobs.progress import Reporter


def test_a_job_log_gets_plain_lines_with_rate_and_eta() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream=stream, tty=False, interval=0)
    with RowProgress(reporter, total=1000, done=200) as progress:
        progress.table("public.ai_messages")
        progress.advance(300)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("loading public.ai_messages")
    assert "public.ai_messages: 500/1000 rows (50%)" in lines[1]
    assert "rows/s, ETA" in lines[1]
    assert "loaded: 500/1000 rows (50%)" in lines[2]
    assert "\r" not in stream.getvalue()


def test_a_terminal_gets_a_bar_not_lines() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream=stream, tty=True, interval=0)
    with RowProgress(reporter, total=10) as progress:
        progress.table("public.users")
        progress.advance(10)
    output = stream.getvalue()
    assert "public.users" in output
    assert "10/10" in output
    assert "ETA" in output
