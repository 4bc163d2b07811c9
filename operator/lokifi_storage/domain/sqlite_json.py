"""JSON text from SQLite into the COPY fields of jsonb and json, printed as PostgreSQL prints
jsonb (keys ordered by length then bytes, its separators, numbers as numeric prints them), so
that the verification digest of a row is the same on both sides. Pure.

Its own module because jsonb's canonical printing, with the fast path for the app's flat
metadata objects, is a piece of its own that the other converters never touch.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from lokifi_storage.domain.copy_fields import (
    Rejected,
    copy_escape,
    kind_name,
    numeric_text,
    text_of,
    utf8,
)

__all__ = ["jsonb_text", "to_json", "to_jsonb"]


class _Number(str):
    """A JSON number, kept as the text PostgreSQL's numeric prints for it."""

    __slots__ = ()


def _json_number(token: str) -> _Number:
    return _Number(numeric_text(Decimal(token)))


def _json_constant(token: str) -> Any:
    raise Rejected(f"{token} is not valid JSON (jsonb refuses it)")


def _jsonb_key(key: str) -> tuple[int, bytes]:
    data = key.encode("utf-8")
    return len(data), data


def _jsonb_string(text: str) -> str:
    if "\x00" in text:
        raise Rejected("JSON text contains \\u0000, which jsonb refuses")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected("JSON text contains an unpaired surrogate escape") from None
    return json.dumps(text, ensure_ascii=False)


def jsonb_text(value: Any) -> str:
    """A parsed JSON value printed as PostgreSQL prints jsonb: object keys ordered by length
    then bytes, `", "` and `": "` separators, numbers as numeric prints them."""
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, str):
        return _jsonb_string(value)
    if isinstance(value, dict):
        keys = sorted(value, key=_jsonb_key)
        return "{" + ", ".join(f"{_jsonb_string(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    raise Rejected(f"unexpected JSON value {type(value).__name__}")


def _parse_json(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return _Number(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Rejected(f"{value!r} is not valid JSON")
        return _json_number(repr(value))
    if not isinstance(value, bytearray | bytes):
        raise Rejected(f"cannot read a {kind_name(value)} as JSON")
    text = text_of(value)
    try:
        return json.loads(
            text,
            parse_float=_json_number,
            parse_int=_json_number,
            parse_constant=_json_constant,
        )
    except json.JSONDecodeError as error:
        raise Rejected(f"invalid JSON: {error.msg} at character {error.pos}") from None
    except RecursionError:
        raise Rejected("JSON nested too deeply") from None


# The scanner json.loads uses (the C one when built), and the quoting JSONEncoder uses.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed types the class, not its argument
)
_STRING: Final = json.encoder.encode_basestring
_JSON_SPACE: Final = " \t\n\r"


def _ascii_key(key: str) -> tuple[int, str]:
    return len(key), key


def _flat_jsonb(value: bytearray) -> bytes | None:
    """The app's metadata: one flat object with ASCII keys and string, integer, boolean or null
    values, printed with the keys in jsonb order; None for anything else (then `jsonb_text`
    decides). Calls the scanner and the string quoting of the json module directly: the
    per-call set-up of json.loads and json.dumps costs more than the work on such objects."""
    if not value.isascii() or b"\\u" in value or value[:1] != b"{":
        return None
    text = value.decode("ascii")
    try:
        parsed, end = _SCAN(text, 0)
    except (ValueError, StopIteration):
        return None
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        return None
    if type(parsed) is not dict:
        return None
    parts = []
    for key in sorted(parsed, key=_ascii_key):
        item = parsed[key]
        kind = type(item)
        if kind is str:
            out = _STRING(item)
        elif kind is int:
            out = str(item)
        elif item is True:
            out = "true"
        elif item is False:
            out = "false"
        elif item is None:
            out = "null"
        else:
            return None
        parts.append(_STRING(key) + ": " + out)
    return copy_escape(("{" + ", ".join(parts) + "}").encode())


def to_jsonb(value: Any) -> bytes:
    if type(value) is bytearray:
        fast = _flat_jsonb(value)
        if fast is not None:
            return fast
    return copy_escape(jsonb_text(_parse_json(value)).encode("utf-8"))


def to_json(value: Any) -> bytes:
    # json keeps the text as written; it is validated so that COPY does not fail on it.
    if isinstance(value, bytearray | bytes):
        _parse_json(value)
        return copy_escape(utf8(value))
    return copy_escape(jsonb_text(_parse_json(value)).encode("utf-8"))
