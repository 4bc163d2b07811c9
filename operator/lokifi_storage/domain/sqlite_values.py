"""SQLite's loosely typed values turned into the text PostgreSQL's COPY reads. Pure.

SQLite stores whatever a column is handed: a DATETIME column holds ISO text with or without a
zone next to Unix seconds and milliseconds, a BOOLEAN column 0/1 or 'true', a TEXT column bytes
that are not UTF-8. Each converter here takes one value as the `sqlite3` module returns it (TEXT
as `bytearray` and BLOB as `bytes`, so the two stay apart; see clients/sqlite_source.py) and
returns the COPY text field for one PostgreSQL type, or raises `Rejected` with the reason. A
value is never altered to make it fit: what cannot be represented exactly is rejected, and the
row goes to the rejects table.

The field each converter returns is also exactly what PostgreSQL prints back for the stored value
through the canonical expression of clients/migrate_sql.py (timestamps in UTC with six
fractional digits, jsonb with its key order and spacing); double precision is compared by its
bits (`float_bits`), since PostgreSQL's shortest float text differs from Python's in places
(1e23 prints as 9.999999999999999e+22). That is what makes the verification digest of a row
the same on both sides.

Decisions where SQLite leaves it open:
- zoneless timestamps are UTC (as the partition planner reads them);
- numbers in a timestamp column are Unix seconds, or milliseconds from 1e11 on (1e11 seconds
  would be the year 5138, 1e11 milliseconds is 1973);
- booleans are 0/1 (integer or real) or the words true/false, t/f, yes/no, y/n, on/off, 1/0;
- a BLOB in a text column is taken when it is valid UTF-8 (SQLite apps write text as blobs);
- text holding a NUL byte is rejected in text columns (PostgreSQL text cannot hold it).

This module holds `converter_for` and the converters of text, numbers, booleans, bytea and
uuid; times are in domain/sqlite_time.py, JSON in domain/sqlite_json.py, the conversion of a
whole column at once in domain/sqlite_columns.py, and what they all share (COPY escaping,
UTF-8 checks, `Rejected`) in domain/copy_fields.py.
"""

from __future__ import annotations

import math
import re
import struct
import uuid
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

from lokifi_storage.domain.copy_fields import (
    NUMBER_TEXT,
    Converter,
    Rejected,
    copy_escape,
    kind_name,
    needs_escape,
    numeric_text,
    text_of,
    utf8,
)
from lokifi_storage.domain.sqlite_json import to_json, to_jsonb
from lokifi_storage.domain.sqlite_time import to_date, to_timestamp, to_timestamptz

__all__ = ["INT_RANGES", "KINDS", "converter_for", "float_bits", "pg_float_text"]

# The PostgreSQL types a SQLite column can be loaded into (format_type's spelling, without the
# type modifier). Anything else in an existing target table is refused up front.
KINDS: Final = (
    "text",
    "character varying",
    "smallint",
    "integer",
    "bigint",
    "boolean",
    "timestamp with time zone",
    "timestamp without time zone",
    "date",
    "double precision",
    "numeric",
    "jsonb",
    "json",
    "bytea",
    "uuid",
)

INT_RANGES: Final = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_TRUE: Final = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE: Final = frozenset({"0", "f", "false", "n", "no", "off"})
_INT_TEXT: Final = re.compile(r"[+-]?\d+")


# --- text ------------------------------------------------------------------------------------


def _text(max_chars: int | None) -> Converter:
    def convert(value: Any) -> bytes:
        if type(value) is bytearray and max_chars is None:
            # The common case, kept free of copies: ASCII text without COPY specials.
            if not value.isascii():
                utf8(value)
            elif b"\x00" in value:
                raise Rejected("text contains a NUL byte, which PostgreSQL text cannot hold")
            if needs_escape(value):
                return copy_escape(bytes(value))
            return value  # type: ignore[return-value]  # bytes-like: joined as it is
        if isinstance(value, bytes | bytearray):
            data = utf8(value)
        elif isinstance(value, int):
            data = str(value).encode()
        elif isinstance(value, float):
            data = pg_float_text(value).encode()
        else:
            raise Rejected(f"cannot store a {kind_name(value)} as text")
        if max_chars is not None and len(data) > max_chars:
            length = len(data.decode("utf-8"))
            if length > max_chars:
                raise Rejected(f"{length} characters do not fit varchar({max_chars})")
        return copy_escape(data)

    return convert


# --- numbers ---------------------------------------------------------------------------------


def _integer(kind: str) -> Converter:
    low, high = INT_RANGES[kind]

    def convert(value: Any) -> bytes:
        if type(value) is int:
            if low <= value <= high:
                return b"%d" % value
            number = value
        elif isinstance(value, float):
            if not value.is_integer():
                raise Rejected(f"{value!r} is not a whole number")
            number = int(value)
        elif isinstance(value, bytearray):
            text = text_of(value).strip()
            if _INT_TEXT.fullmatch(text):
                number = int(text)
            else:
                try:
                    parsed = Decimal(text)
                except InvalidOperation:
                    raise Rejected(f"{text[:40]!r} is not a number") from None
                if not parsed.is_finite() or parsed != parsed.to_integral_value():
                    raise Rejected(f"{text[:40]!r} is not a whole number")
                number = int(parsed)
        else:
            raise Rejected(f"cannot store a {kind_name(value)} as {kind}")
        if not low <= number <= high:
            raise Rejected(f"{number} is out of range for {kind}")
        return str(number).encode()

    return convert


def float_bits(field: bytes) -> bytes:
    """A double precision COPY field as the hex of its eight bytes, as float8send gives them."""
    return struct.pack(">d", float(field)).hex().encode()


def pg_float_text(value: float) -> str:
    """`value` as text PostgreSQL reads back to the same double: Python's shortest round-trip
    digits, laid out as PostgreSQL does in most cases (fixed notation for decimal exponents
    -4..14, else d.ddde+XX) and with its spellings of NaN and the infinities."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    mantissa, _, exp_text = text.partition("e")
    sign = "-" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("-")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    if not digits:
        return f"{sign}0"
    # decimal exponent of the first significant digit
    if whole.strip("0"):
        exponent = len(whole.lstrip("0")) - 1
    else:
        exponent = -(len(frac) - len(frac.lstrip("0")) + 1)
    exponent += int(exp_text) if exp_text else 0
    digits = digits.rstrip("0") or "0"
    if -4 <= exponent < 15:
        if exponent >= 0:
            if len(digits) <= exponent + 1:
                return f"{sign}{digits}{'0' * (exponent + 1 - len(digits))}"
            return f"{sign}{digits[: exponent + 1]}.{digits[exponent + 1 :]}"
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{head}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"


def _double(value: Any) -> bytes:
    if isinstance(value, float):
        return pg_float_text(value).encode()
    if type(value) is int:
        number = float(value)
        if int(number) != value:
            raise Rejected(f"{value} has more digits than a double precision keeps")
        return pg_float_text(number).encode()
    if isinstance(value, bytearray):
        text = text_of(value).strip()
        if not NUMBER_TEXT.fullmatch(text) and text.lower() not in {
            "nan",
            "infinity",
            "-infinity",
            "inf",
            "-inf",
        }:
            raise Rejected(f"{text[:40]!r} is not a number")
        return pg_float_text(float(text)).encode()
    raise Rejected(f"cannot store a {kind_name(value)} as double precision")


def _numeric(precision: int | None, scale: int | None) -> Converter:
    quantum = Decimal(1).scaleb(-scale) if scale is not None else None

    def convert(value: Any) -> bytes:
        if type(value) is int:
            number = Decimal(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise Rejected(f"{value!r} is not a finite number")
            number = Decimal(repr(value))
        elif isinstance(value, bytearray):
            text = text_of(value).strip()
            if not NUMBER_TEXT.fullmatch(text):
                raise Rejected(f"{text[:40]!r} is not a number")
            number = Decimal(text)
        else:
            raise Rejected(f"cannot store a {kind_name(value)} as numeric")
        if quantum is not None:
            exact = number
            try:
                number = number.quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                raise Rejected(f"{exact} does not fit numeric({precision},{scale})") from None
            if number != exact:
                raise Rejected(f"{exact} has more than {scale} decimal places")
        if precision is not None:
            whole_digits = max(number.adjusted() + 1, 0)
            if whole_digits > precision - (scale or 0):
                raise Rejected(f"{number} does not fit numeric({precision},{scale or 0})")
        return numeric_text(number).encode()

    return convert


# --- booleans --------------------------------------------------------------------------------


def _boolean(value: Any) -> bytes:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 1:
            return b"t"
        if value == 0:
            return b"f"
        raise Rejected(f"{value!r} is not a boolean (0 or 1)")
    if value is True or value is False:
        return b"t" if value else b"f"
    if isinstance(value, bytearray):
        word = text_of(value).strip().lower()
        if word in _TRUE:
            return b"t"
        if word in _FALSE:
            return b"f"
        raise Rejected(f"{word[:40]!r} is not a boolean")
    raise Rejected(f"cannot store a {kind_name(value)} as boolean")


# --- binary and uuid -------------------------------------------------------------------------


def _bytea(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return b"\\\\x" + bytes(value).hex().encode()
    raise Rejected(f"cannot store a {kind_name(value)} as bytea")


def _uuid(value: Any) -> bytes:
    if isinstance(value, bytes) and len(value) == 16:
        return str(uuid.UUID(bytes=value)).encode()
    if isinstance(value, bytearray | bytes):
        text = text_of(value).strip()
        try:
            return str(uuid.UUID(text)).encode()
        except ValueError:
            raise Rejected(f"{text[:40]!r} is not a UUID") from None
    raise Rejected(f"cannot store a {kind_name(value)} as uuid")


def converter_for(pg_type: str) -> Converter:
    """The converter for a column of `pg_type` as format_type prints it (with its modifier)."""
    base, _, modifier = pg_type.partition("(")
    base = base.strip()
    args = [int(a) for a in re.findall(r"\d+", modifier)]
    if base == "text":
        return _text(None)
    if base == "character varying":
        return _text(args[0] if args else None)
    if base in INT_RANGES:
        return _integer(base)
    if base == "boolean":
        return _boolean
    if base == "timestamp with time zone" and not args:
        return to_timestamptz
    if base == "timestamp without time zone" and not args:
        return to_timestamp
    if base == "date":
        return to_date
    if base == "double precision":
        return _double
    if base == "numeric":
        return _numeric(args[0] if args else None, args[1] if len(args) > 1 else None)
    if base == "jsonb":
        return to_jsonb
    if base == "json":
        return to_json
    if base == "bytea":
        return _bytea
    if base == "uuid":
        return _uuid
    raise ValueError(f"no conversion into {pg_type}")
