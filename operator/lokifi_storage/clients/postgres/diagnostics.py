"""What PostgreSQL said about a failed statement, fit for a condition message.

The primary message alone is often useless ("unique constraint on partitioned table must include
all partitioning columns"); the DETAIL names the constraint and the missing column, the HINT the
fix, and for a lock the blocking process. So every client that reports a server error puts all
three in its message, through `server_message`.

What they may quote is redacted first: a connection string's password (a URL's userinfo or a
`password=` keyword) and row contents (`Key (id)=(...)`, `Failing row contains (...)`), which
are the application's data, not the operator's to copy into status and Events.
"""

from __future__ import annotations

import re
from typing import Final

import psycopg

__all__ = ["MESSAGE_LIMIT", "describe_error", "redact", "server_message"]

MESSAGE_LIMIT: Final = 600

_URL_USERINFO: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@]*@")
_KEYWORD_SECRET: Final = re.compile(
    r"(?i)\b(password|passwd|sslpassword|secret|token)(\s*[=:]\s*)('(?:[^']|'')*'|\S+)"
)
_KEY_VALUES: Final = re.compile(r"(Key \((?:[^()]|\([^()]*\))*\))=\((?:[^()]|\([^()]*\))*\)")
_FAILING_ROW: Final = re.compile(r"(Failing row contains )\(.*\)", re.DOTALL)


def redact(text: str) -> str:
    """`text` without passwords of connection strings and without quoted row contents."""
    text = _URL_USERINFO.sub(r"\1***@", text)
    text = _KEYWORD_SECRET.sub(r"\1\2***", text)
    text = _KEY_VALUES.sub(r"\1=(…)", text)
    return _FAILING_ROW.sub(r"\1(…)", text)


def server_message(error: psycopg.Error) -> str:
    """`primary; DETAIL: ...; HINT: ...`, redacted and bounded; the type name when the server
    sent nothing (a client-side error)."""
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if not primary:
        return type(error).__name__
    parts = [str(primary)]
    detail = getattr(diag, "message_detail", None)
    hint = getattr(diag, "message_hint", None)
    if detail:
        parts.append(f"DETAIL: {detail}")
    if hint:
        parts.append(f"HINT: {hint}")
    text = redact("; ".join(parts))
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def describe_error(error: psycopg.Error) -> str:
    """`UniqueViolation: <server_message>`, or the type name alone when the server said nothing."""
    name = type(error).__name__
    text = server_message(error)
    return name if text == name else f"{name}: {text}"
