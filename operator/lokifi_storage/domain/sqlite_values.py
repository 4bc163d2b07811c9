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
"""

from __future__ import annotations

import datetime as dt
import json
import json.encoder
import json.scanner
import math
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import repeat
from operator import itemgetter
from typing import Any, Final

__all__ = [
    "COPY_NULL",
    "KINDS",
    "ColumnConverter",
    "Converter",
    "Rejected",
    "column_converter_for",
    "converter_for",
    "copy_escape",
    "float_bits",
    "jsonb_text",
    "pg_float_text",
    "timestamp_instant",
]

Converter = Callable[[Any], bytes]


class Rejected(Exception):
    """A value that cannot be stored in its column as it is; the message is the reason."""


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

_INT_RANGES: Final = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_UTC: Final = dt.UTC
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MS_FROM: Final = 100_000_000_000  # |n| >= 1e11 in a timestamp column: milliseconds
_TRUE: Final = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE: Final = frozenset({"0", "f", "false", "n", "no", "off"})
_NUMBER_TEXT: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INT_TEXT: Final = re.compile(r"[+-]?\d+")


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


def _needs_escape(value: bytes | bytearray) -> bool:
    return (
        b"\\" in value
        or b"\t" in value
        or b"\n" in value
        or b"\r" in value
        or b"\b" in value
        or b"\f" in value
        or b"\v" in value
    )


def _utf8(value: bytes | bytearray) -> bytes:
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


def _text_of(value: Any) -> str:
    """A TEXT (or BLOB) value as a str, for the parsers."""
    if isinstance(value, bytes | bytearray):
        return _utf8(value).decode("utf-8")
    raise Rejected(f"expected text, found {type(value).__name__}")


def _kind_name(value: Any) -> str:
    if isinstance(value, bytearray):
        return "text"
    if isinstance(value, bytes):
        return "blob"
    if isinstance(value, bool | int):
        return "integer"
    if isinstance(value, float):
        return "real"
    return type(value).__name__


# --- text ------------------------------------------------------------------------------------


def _text(max_chars: int | None) -> Converter:
    def convert(value: Any) -> bytes:
        if type(value) is bytearray and max_chars is None:
            # The common case, kept free of copies: ASCII text without COPY specials.
            if not value.isascii():
                _utf8(value)
            elif b"\x00" in value:
                raise Rejected("text contains a NUL byte, which PostgreSQL text cannot hold")
            if _needs_escape(value):
                return copy_escape(bytes(value))
            return value  # type: ignore[return-value]  # bytes-like: joined as it is
        if isinstance(value, bytes | bytearray):
            data = _utf8(value)
        elif isinstance(value, int):
            data = str(value).encode()
        elif isinstance(value, float):
            data = pg_float_text(value).encode()
        else:
            raise Rejected(f"cannot store a {_kind_name(value)} as text")
        if max_chars is not None and len(data) > max_chars:
            length = len(data.decode("utf-8"))
            if length > max_chars:
                raise Rejected(f"{length} characters do not fit varchar({max_chars})")
        return copy_escape(data)

    return convert


# --- numbers ---------------------------------------------------------------------------------


def _integer(kind: str) -> Converter:
    low, high = _INT_RANGES[kind]

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
            text = _text_of(value).strip()
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
            raise Rejected(f"cannot store a {_kind_name(value)} as {kind}")
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
        text = _text_of(value).strip()
        if not _NUMBER_TEXT.fullmatch(text) and text.lower() not in {
            "nan",
            "infinity",
            "-infinity",
            "inf",
            "-inf",
        }:
            raise Rejected(f"{text[:40]!r} is not a number")
        return pg_float_text(float(text)).encode()
    raise Rejected(f"cannot store a {_kind_name(value)} as double precision")


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
            text = _text_of(value).strip()
            if not _NUMBER_TEXT.fullmatch(text):
                raise Rejected(f"{text[:40]!r} is not a number")
            number = Decimal(text)
        else:
            raise Rejected(f"cannot store a {_kind_name(value)} as numeric")
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
        return _numeric_text(number).encode()

    return convert


def _numeric_text(number: Decimal) -> str:
    if number.is_zero():
        number = number.copy_abs()
    return format(number, "f")


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
        word = _text_of(value).strip().lower()
        if word in _TRUE:
            return b"t"
        if word in _FALSE:
            return b"f"
        raise Rejected(f"{word[:40]!r} is not a boolean")
    raise Rejected(f"cannot store a {_kind_name(value)} as boolean")


# --- time ------------------------------------------------------------------------------------


def _from_unix(number: float) -> dt.datetime:
    try:
        if abs(number) >= _MS_FROM:
            if isinstance(number, int):
                return _EPOCH + dt.timedelta(milliseconds=number)
            return _EPOCH + dt.timedelta(microseconds=round(number * 1000))
        if isinstance(number, int):
            return _EPOCH + dt.timedelta(seconds=number)
        return _EPOCH + dt.timedelta(microseconds=round(number * 1_000_000))
    except (OverflowError, ValueError):
        raise Rejected(f"{number!r} is out of range as a Unix time") from None


def timestamp_instant(value: Any) -> dt.datetime:
    """The UTC instant of a timestamp value (ISO text, Unix seconds or milliseconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise Rejected(f"{value!r} is not a time")
        return _from_unix(value)
    if not isinstance(value, bytearray | bytes):
        raise Rejected(f"cannot read a {_kind_name(value)} as a timestamp")
    text = _text_of(value).strip()
    if _NUMBER_TEXT.fullmatch(text):
        number = float(text) if any(c in text for c in ".eE") else int(text)
        return _from_unix(number)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Rejected(f"{text[:40]!r} is not an ISO 8601 time or a Unix time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=_UTC)
    try:
        return parsed.astimezone(_UTC)
    except OverflowError:
        raise Rejected(f"{text[:40]!r} is out of range") from None


def _stamp(t: dt.datetime) -> str:
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}"
    )


def _naive_iso(value: Any) -> bytes | None:
    """`YYYY-MM-DD HH:MM:SS` (or with T), the app's most common spelling, validated and laid
    out without building a datetime's text; None for anything else."""
    if (
        type(value) is bytearray
        and len(value) == 19
        and value[10] in (32, 84)
        and value[4] == value[7] == 45
        and value[13] == value[16] == 58  # not "YYYY-MM-DD HH:MM+05" nor a week date
    ):
        try:
            dt.datetime.fromisoformat(value.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return None
        return bytes(value[:10]) + b" " + bytes(value[11:]) + b".000000"
    return None


def _timestamptz(value: Any) -> bytes:
    fast = _naive_iso(value)
    if fast is not None:
        return fast + b"+00"
    return (_stamp(timestamp_instant(value)) + "+00").encode()


def _timestamp(value: Any) -> bytes:
    fast = _naive_iso(value)
    if fast is not None:
        return fast
    return _stamp(timestamp_instant(value)).encode()


def _date(value: Any) -> bytes:
    t = timestamp_instant(value)
    if (t.hour, t.minute, t.second, t.microsecond) != (0, 0, 0, 0):
        raise Rejected(f"{t.isoformat()} has a time of day; a date column would drop it")
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}".encode()


# --- JSON ------------------------------------------------------------------------------------


class _Number(str):
    """A JSON number, kept as the text PostgreSQL's numeric prints for it."""

    __slots__ = ()


def _json_number(token: str) -> _Number:
    return _Number(_numeric_text(Decimal(token)))


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
        raise Rejected(f"cannot read a {_kind_name(value)} as JSON")
    text = _text_of(value)
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


def _jsonb(value: Any) -> bytes:
    if type(value) is bytearray:
        fast = _flat_jsonb(value)
        if fast is not None:
            return fast
    return copy_escape(jsonb_text(_parse_json(value)).encode("utf-8"))


def _json(value: Any) -> bytes:
    # json keeps the text as written; it is validated so that COPY does not fail on it.
    if isinstance(value, bytearray | bytes):
        _parse_json(value)
        return copy_escape(_utf8(value))
    return copy_escape(jsonb_text(_parse_json(value)).encode("utf-8"))


# --- binary and uuid -------------------------------------------------------------------------


def _bytea(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return b"\\\\x" + bytes(value).hex().encode()
    raise Rejected(f"cannot store a {_kind_name(value)} as bytea")


def _uuid(value: Any) -> bytes:
    if isinstance(value, bytes) and len(value) == 16:
        return str(uuid.UUID(bytes=value)).encode()
    if isinstance(value, bytearray | bytes):
        text = _text_of(value).strip()
        try:
            return str(uuid.UUID(text)).encode()
        except ValueError:
            raise Rejected(f"{text[:40]!r} is not a UUID") from None
    raise Rejected(f"cannot store a {_kind_name(value)} as uuid")


def converter_for(pg_type: str) -> Converter:
    """The converter for a column of `pg_type` as format_type prints it (with its modifier)."""
    base, _, modifier = pg_type.partition("(")
    base = base.strip()
    args = [int(a) for a in re.findall(r"\d+", modifier)]
    if base == "text":
        return _text(None)
    if base == "character varying":
        return _text(args[0] if args else None)
    if base in _INT_RANGES:
        return _integer(base)
    if base == "boolean":
        return _boolean
    if base == "timestamp with time zone" and not args:
        return _timestamptz
    if base == "timestamp without time zone" and not args:
        return _timestamp
    if base == "date":
        return _date
    if base == "double precision":
        return _double
    if base == "numeric":
        return _numeric(args[0] if args else None, args[1] if len(args) > 1 else None)
    if base == "jsonb":
        return _jsonb
    if base == "json":
        return _json
    if base == "bytea":
        return _bytea
    if base == "uuid":
        return _uuid
    raise ValueError(f"no conversion into {pg_type}")


# --- a whole column of a batch at once -------------------------------------------------------

COPY_NULL: Final = b"\\N"
ColumnConverter = Callable[[Sequence[Any]], list[Any] | None]


def _per_value(convert: Converter) -> ColumnConverter:
    def column(values: Sequence[Any]) -> list[Any] | None:
        try:
            return [COPY_NULL if v is None else convert(v) for v in values]
        except Rejected:
            return None

    return column


def _integer_column(kind: str, per_value: ColumnConverter) -> ColumnConverter:
    low, high = _INT_RANGES[kind]
    as_text = b"%d".__mod__

    def column(values: Sequence[Any]) -> list[Any] | None:
        if set(map(type, values)) != {int}:
            return per_value(values)
        if min(values) < low or max(values) > high:
            return None
        return list(map(as_text, values))

    return column


def _text_column(max_chars: int | None, per_value: ColumnConverter) -> ColumnConverter:
    def column(values: Sequence[Any]) -> list[Any] | None:
        if set(map(type, values)) != {bytearray}:
            return per_value(values)
        # One pass over the batch's text, NUL-separated: a NUL inside a value shows as one NUL
        # too many, and a value cut in the middle of a UTF-8 sequence stays invalid.
        joined = b"\x00".join(values)
        if joined.count(0) != len(values) - 1:
            return None
        if not joined.isascii():
            try:
                joined.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if max_chars is not None:
                return per_value(values)
        elif max_chars is not None and max(map(len, values)) > max_chars:
            return None
        if _needs_escape(joined):
            return list(map(copy_escape, values))
        return list(values)

    return column


def _naive_column(suffix: bytes, per_value: ColumnConverter) -> ColumnConverter:
    tail = repeat(suffix)

    def column(values: Sequence[Any]) -> list[Any] | None:
        if (
            set(map(type, values)) != {bytearray}
            or set(map(len, values)) != {19}
            or set(map(itemgetter(4), values)) != {45}
            or set(map(itemgetter(7), values)) != {45}
            or set(map(itemgetter(10), values)) != {32}
            or set(map(itemgetter(13), values)) != {58}
            or set(map(itemgetter(16), values)) != {58}
        ):
            return per_value(values)
        try:
            for _ in map(dt.datetime.fromisoformat, map(bytearray.decode, values)):
                pass
        except (ValueError, UnicodeDecodeError):
            return per_value(values)
        return list(map(bytearray.__add__, values, tail))

    return column


def column_converter_for(pg_type: str) -> ColumnConverter:
    """Converts one column of a batch of rows at once, to the same fields as the converter of
    `pg_type` value by value, or returns None when a value is to be rejected (the caller then
    converts the batch row by row to find it and say why).

    Where a batch holds one kind of value only (integers in an integer column, text in a text
    column, `YYYY-MM-DD HH:MM:SS` in a timestamp column), the checks and the conversion run
    over the whole column inside C (set, map, join, one UTF-8 decode), not once per value in
    Python: the per-value converters cost more in calls than in work for such values. Any
    other batch goes value by value."""
    base, _, modifier = pg_type.partition("(")
    base = base.strip()
    args = [int(a) for a in re.findall(r"\d+", modifier)]
    per_value = _per_value(converter_for(pg_type))
    if base in _INT_RANGES:
        return _integer_column(base, per_value)
    if base == "text":
        return _text_column(None, per_value)
    if base == "character varying":
        return _text_column(args[0] if args else None, per_value)
    if base == "timestamp with time zone" and not args:
        return _naive_column(b".000000+00", per_value)
    if base == "timestamp without time zone" and not args:
        return _naive_column(b".000000", per_value)
    return per_value
