"""Job progress: a bar in a terminal, timestamped plain lines in a Job's log."""

from __future__ import annotations

import io
import re

from lokifi_storage.jobs.progress import Reporter, human_bytes


def test_without_a_terminal_progress_is_plain_timestamped_lines() -> None:
    out = io.StringIO()
    reporter = Reporter(stream=out, tty=False, interval=0.0)
    with reporter.task("dump db", total=3 * 1024**2) as task:
        task.advance(1024**2)
        task.advance(2 * 1024**2)
    lines = out.getvalue().splitlines()
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ dump db: ", line) for line in lines)
    assert "\r" not in out.getvalue()
    assert "\x1b[" not in out.getvalue()
    assert lines[-1].split(": ", 1)[1].startswith("done, 3.0 MiB of 3.0 MiB")


def test_in_a_terminal_progress_is_a_bar() -> None:
    out = io.StringIO()
    reporter = Reporter(stream=out, tty=True)
    with reporter.task("dump db", total=100) as task:
        task.advance(100)
    text = out.getvalue()
    assert "dump db" in text
    assert "\x1b[" in text  # drawn with terminal control sequences


def test_sizes_are_printed_in_binary_units() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**4) == "5.0 TiB"
