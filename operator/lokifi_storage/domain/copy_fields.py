"""The COPY text field, and the checks every converter of SQLite values shares.

COPY's text format escapes backslash and the control characters it names by a letter; text must
be UTF-8 without NUL; a value that does not fit raises `Rejected`, which sends its row to the
rejects table. The converters of each kind (domain/sqlite_values.py, sqlite_time.py,
sqlite_json.py) and the whole-column ones (domain/sqlite_columns.py) all build on these: they are
kept here so that none of those modules imports the dispatcher (`converter_for`) that imports
them. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "NUMBER_TEXT",
    "Converter",
    "Rejected",
    "copy_escape",
    "kind_name",
    "needs_escape",
    "numeric_text",
    "text_of",
    "utf8",
]

Converter = Callable[[Any], bytes]


class Rejected(Exception):
    """A value that cannot be stored in its column as it is; the message is the reason."""


NUMBER_TEXT: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


_COPY_ESCAPES: Final = (
    (b"\t", b"\\t"),
    (b"\n", b"\\n"),
    (b"\r", b"\\r"),
    (b"\b", b"\\b"),
    (b"\f", b"\\f"),
    (b"\v", b"\\v"),
)


def copy_escape(data: bytes) -> bytes:
    """Escape a text field for COPY's text format exactly as COPY TO writes it (backslash, and
    the control characters it names by a letter), so that the verification can hash what the
    server sends back byte for byte against what was sent."""
    if b"\\" in data:
        data = data.replace(b"\\", b"\\\\")
    for raw, escaped in _COPY_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def needs_escape(value: bytes | bytearray) -> bool:
    return (
        b"\\" in value
        or b"\t" in value
        or b"\n" in value
        or b"\r" in value
        or b"\b" in value
        or b"\f" in value
        or b"\v" in value
    )


def utf8(value: bytes | bytearray) -> bytes:
    """The value's bytes once they are known to be valid UTF-8 without NUL."""
    data = bytes(value)
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Rejected(f"invalid UTF-8 at byte {error.start}") from None
    if b"\x00" in data:
        raise Rejected("text contains a NUL byte, which PostgreSQL text cannot hold")
    return data


def text_of(value: Any) -> str:
    """A TEXT (or BLOB) value as a str, for the parsers."""
    if isinstance(value, bytes | bytearray):
        return utf8(value).decode("utf-8")
    raise Rejected(f"expected text, found {type(value).__name__}")


def kind_name(value: Any) -> str:
    if isinstance(value, bytearray):
        return "text"
    if isinstance(value, bytes):
        return "blob"
    if isinstance(value, bool | int):
        return "integer"
    if isinstance(value, float):
        return "real"
    return type(value).__name__


def numeric_text(number: Decimal) -> str:
    if number.is_zero():
        number = number.copy_abs()
    return format(number, "f")
