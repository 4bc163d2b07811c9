"""The clients' error tree. Every error a server raises is wrapped here, chained with `from`.

    ClientError                 anything a client could not do
    ├── ConnectionFailed        server unreachable (reason ConnectionFailed / EndpointUnreachable)
    ├── AuthenticationFailed    credentials refused
    ├── NotFound                the thing addressed does not exist
    │   └── RelationGone        a table dropped between planning and its turn (an expired partition)
    ├── Refused                 the server understood and said no (e.g. CONFIG SET refused)
    │   ├── Conflict            a conditional write found the object changed or already there
    │   └── LockTimeout         a lock not granted within lock_timeout; nothing was done
    ├── PartitionWorkBusy       another session holds a table's partition-work lock
    ├── SourceCorrupt           the SQLite file to migrate is damaged
    └── SourceLocked            the SQLite file to migrate is locked by a writer

Every client raises from this one tree so that callers catch by meaning (a lock timeout is a
lock timeout whether VACUUM or a partition DDL hit it) and a part's condition reason comes from
the error itself. Messages never contain credentials: clients build them from host, port and
names only, never from a URL or the library's own message when that could echo a password.
"""

from __future__ import annotations

from lokifi_storage.api.conditions import Reason

__all__ = [
    "AuthenticationFailed",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "LockTimeout",
    "NotFound",
    "PartitionWorkBusy",
    "Refused",
    "RelationGone",
    "SourceCorrupt",
    "SourceLocked",
]


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


class RelationGone(NotFound):
    """Not a failure of the run that meets it: the relation it planned for no longer exists."""


class Refused(ClientError):
    reason = "Refused"


class Conflict(Refused):
    """409 from Kubernetes (the object changed since it was read, or already exists), or an S3
    conditional write whose key is taken."""

    reason = "Conflict"


class LockTimeout(Refused):
    """Raised only after every attempt waited out, so the caller retries later, not now."""

    reason = Reason.LOCK_TIMEOUT


class PartitionWorkBusy(ClientError):
    """Another reconcile or job is already doing this table's partition work; this one steps
    aside rather than queue behind it."""

    reason = Reason.PARTITION_WORK_BUSY


class SourceCorrupt(ClientError):
    reason = "SourceCorrupt"


class SourceLocked(ClientError):
    reason = "SourceLocked"
