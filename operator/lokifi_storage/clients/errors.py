"""The clients' error tree. Every error a server raises is wrapped here, chained with `from`.

    ClientError                 anything a client could not do
    ├── ConnectionFailed        server unreachable (reason ConnectionFailed / EndpointUnreachable)
    ├── AuthenticationFailed    credentials refused
    ├── NotFound                the thing addressed does not exist
    ├── Refused                 the server understood and said no (e.g. CONFIG SET refused)
    └── Conflict                a conditional write found the object already there

Messages never contain credentials: clients build them from host, port and names only, never
from a URL or the library's own message when that could echo a password.
"""

from __future__ import annotations


class ClientError(Exception):
    """A client could not do what was asked. `reason` is a condition reason from api.conditions."""

    reason: str = "ClientError"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


class ConnectionFailed(ClientError):
    reason = "ConnectionFailed"


class AuthenticationFailed(ClientError):
    reason = "AuthenticationFailed"


class NotFound(ClientError):
    reason = "NotFound"


class Refused(ClientError):
    reason = "Refused"


class Conflict(ClientError):
    reason = "Conflict"
