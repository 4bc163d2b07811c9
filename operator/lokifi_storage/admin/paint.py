"""Colour for a terminal, plain text for a pipe: one decision, made once per command.

ANSI colour only when stdout is a terminal and NO_COLOR is unset (https://no-color.org), or
when asked for with --color always; text piped into a file or another command stays plain so
it can be grepped, diffed and pasted.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Final, TextIO

__all__ = ["ColorMode", "Painter"]

_CODES: Final = {
    "green": "32",
    "yellow": "33",
    "red": "31",
    "cyan": "36",
    "bold": "1",
    "dim": "2",
}


class ColorMode(StrEnum):
    """--color: auto (a terminal gets colour), always, never."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class Painter:
    """Wraps text in ANSI colour codes, or returns it unchanged when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(cls, mode: ColorMode = ColorMode.AUTO, stream: TextIO | None = None) -> Painter:
        if mode == ColorMode.ALWAYS:
            return cls(True)
        if mode == ColorMode.NEVER or os.environ.get("NO_COLOR"):
            return cls(False)
        out = stream or sys.stdout
        return cls(bool(getattr(out, "isatty", lambda: False)()))

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or not text:
            return text
        return f"\033[{_CODES[style]}m{text}\033[0m"

    def state(self, text: str, good: bool | None) -> str:
        """Green when good, red when bad, yellow when unknown."""
        return self(text, "green" if good else "yellow" if good is None else "red")
