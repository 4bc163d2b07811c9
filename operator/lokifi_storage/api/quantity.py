"""Byte sizes as admins write them, parsed to integers, and printed back for humans.

Two dialects meet in one resource and disagree on a letter:
- Kubernetes quantities (`monitoring.capacity`): `500Gi`, `1Ti` (powers of 1024), `2T`, `500G`
  (powers of 1000), `1e12`, decimals like `1.5Ti`. A lower-case `m` means milli (1/1000), which
  for bytes is never what anyone meant, so it is refused with a hint.
- Redis memory units (`redis.settings.maxmemory`): whole numbers with `b`, `k`/`kb`, `m`/`mb`,
  `g`/`gb` in any case, where `k`/`m`/`g` are powers of 1000 and `kb`/`mb`/`gb` powers of 1024;
  Redis has no `t` and no decimals.

So there are two parsers and no guessing between them. `format_bytes` prints sizes the
Kubernetes way (`1.5Gi`) for status and printer columns.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Final


class QuantityError(ValueError):
    """A size that cannot be read as bytes."""


_BINARY: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL: Final = {"": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}

KUBERNETES_QUANTITY_PATTERN: Final = (
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_KUBE: Final = re.compile(
    r"^\+?(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>[A-Za-z]*[+-]?[0-9]*)$"
)
_EXPONENT: Final = re.compile(r"^[eE](?P<exp>[+-]?[0-9]+)$")

REDIS_MEMORY_PATTERN: Final = r"^[0-9]+([bB]|[kKmMgG][bB]?)?$"
_REDIS_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}
_REDIS: Final = re.compile(r"^(?P<number>[0-9]+)(?P<unit>[a-zA-Z]*)$")


def parse_kubernetes_quantity(text: str) -> int:
    """`500Gi` -> 536870912000. Fractions of a byte round up, as Kubernetes' Value() does."""
    match = _KUBE.fullmatch(text.strip())
    if match is None:
        raise QuantityError(
            f"{text!r} is not a Kubernetes quantity; write e.g. 1Ti, 500Gi, 2T or 500G"
        )
    suffix = match["suffix"]
    try:
        number = Decimal(match["number"])
    except InvalidOperation as err:  # pragma: no cover - the regex admits only decimals
        raise QuantityError(f"{text!r} is not a number") from err
    if suffix in _BINARY:
        value = number * (Decimal(1024) ** _BINARY[suffix])
    elif suffix in _DECIMAL:
        value = number * (Decimal(1000) ** _DECIMAL[suffix])
    elif (exponent := _EXPONENT.fullmatch(suffix)) is not None:
        value = number.scaleb(int(exponent["exp"]))
    elif suffix == "m":
        raise QuantityError(
            f"{text!r} means milli-bytes in a Kubernetes quantity; write Mi (mebibytes) or "
            "M (megabytes), e.g. 512Mi"
        )
    else:
        raise QuantityError(
            f"{text!r} has an unknown suffix {suffix!r}; use Ki, Mi, Gi, Ti, Pi, Ei "
            "(powers of 1024) or k, M, G, T, P, E (powers of 1000)"
        )
    return math.ceil(value)


def parse_redis_memory(text: str) -> int:
    """`2gb` -> 2147483648, `2g` -> 2000000000: Redis' own reading of memory settings."""
    match = _REDIS.fullmatch(text.strip())
    unit = match["unit"].lower() if match is not None else ""
    if match is None or unit not in _REDIS_UNITS:
        raise QuantityError(
            f"{text!r} is not a Redis memory size; write a whole number with an optional unit "
            "b, k, kb, m, mb, g or gb (e.g. 2gb or 512mb)"
        )
    return int(match["number"]) * _REDIS_UNITS[unit]


_FORMAT_UNITS: Final = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def format_bytes(size: int) -> str:
    """A short human size in binary units: 0 -> `0`, 1536 -> `1.5Ki`, 10**12 -> `931Gi`.

    Three significant digits at most, so a printer column stays narrow and does not change on
    every reconcile because of the last few bytes.
    """
    if size < 0:
        raise QuantityError("a size cannot be negative")
    if size < 1024:
        return str(size)
    value = float(size)
    unit = ""
    for unit in _FORMAT_UNITS:
        value /= 1024
        # Compare after rounding, so 1048575 bytes prints as 1Mi rather than 1024Ki.
        if round(value) < 1024 or unit == _FORMAT_UNITS[-1]:
            break
    if value >= 100:
        return f"{value:.0f}{unit}"
    if value >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".") + unit
    return f"{value:.2f}".rstrip("0").rstrip(".") + unit
