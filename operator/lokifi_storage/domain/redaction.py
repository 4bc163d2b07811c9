"""The last guard between a credential and a log line: every value read from a Secret, and
every URL password, is replaced by `***` in whatever the operator's process logs.

Messages the operator builds never contain credentials (clients/errors.py), but at DEBUG the
libraries underneath (botocore, urllib3, psycopg, Kopf) log what they were handed, and an
exception from a library may quote a connection string. Kopf logs such an exception, with its
traceback and chained causes, before anyone can look at it; this filter is installed on the
process's log handlers so that whatever reaches them has been through `redact` first.

Values are registered when they are read (reconcile/secrets.py), so the filter knows exactly
the strings to hide and nothing is guessed; a URL's password is also caught by its shape,
`scheme://user:password@`, even when no Secret carried it.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "RedactingFilter", "forget_all", "redact", "register_secret"]

MASK: Final = "***"
# Shorter values (a "1", "true") would mask ordinary words and numbers all over the log.
MIN_LENGTH: Final = 6
_URL_PASSWORD: Final = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+(@)")

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Hide `value` (and, for a URL, its password, also percent-decoded) from now on."""
    candidates = {value}
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    if password:
        candidates |= {password, unquote(password)}
    with _lock:
        _secrets.update(c for c in candidates if len(c) >= MIN_LENGTH)


def forget_all() -> None:
    """Forget every registered value (tests)."""
    with _lock:
        _secrets.clear()


def redact(text: str) -> str:
    """`text` with every registered value and every URL password replaced by MASK."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return _URL_PASSWORD.sub(rf"\1{MASK}\2", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and traceback through `redact` before any handler
    formats it. Attach it to handlers (not loggers): handler filters see the records of every
    logger, including the libraries' own."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
