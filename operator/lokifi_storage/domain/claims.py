"""Who manages a shared external thing: a Redis setting of a cluster, a lifecycle rule of a
bucket, a table of a database. Pure.

Two LokifiStorage resources (in two namespaces, or two clusters sharing one Redis) that declare
the same thing with different values would otherwise repair each other's value on every
resync, for ever. So the first resource to manage a thing owns it, and the claim is recorded on
the thing itself (a hash in the Redis cluster, a bucket tag, a line of the table's comment),
where every operator instance sees it whatever namespace or cluster it serves. A second
resource whose desired value differs gets a Conflict condition naming the owner and changes
nothing there; an equal value may share (it changes nothing either way). The owner releases
the claim when it stops declaring the thing or is deleted.

A claim names its owner by uid (two clusters can each have a `lokifi/lokifi-prod`) and, for
the humans reading a condition, by namespace/name. `value` is whatever comparable form the part
chooses (a normalized setting, a digest of a table spec); parts that compare against the live
object (lifecycle rules) leave it empty.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "TABLE_CLAIM_PREFIX",
    "Claim",
    "Claimant",
    "Verdict",
    "digest",
    "judge",
    "table_claim",
    "with_table_claim",
]

TABLE_CLAIM_PREFIX = "lokifi-storage: managed by "
_TABLE_LINE = re.compile(
    r"^" + re.escape(TABLE_CLAIM_PREFIX) + r"(\S+) uid=(\S+) spec=(\S*)[ \t]*$", re.MULTILINE
)


@dataclass(frozen=True)
class Claimant:
    """The resource asking to manage something."""

    uid: str
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def claim(self, value: str = "") -> Claim:
        return Claim(uid=self.uid, owner=self.ref, value=value)


@dataclass(frozen=True)
class Claim:
    """A recorded claim: the owner's uid, its namespace/name, and its desired value."""

    uid: str
    owner: str
    value: str = ""

    def encode(self) -> str:
        """Compact JSON, for a Redis hash field."""
        return json.dumps({"uid": self.uid, "owner": self.owner, "value": self.value})

    @classmethod
    def decode(cls, text: str | bytes | None) -> Claim | None:
        """The claim in `text`; None for anything that is not one (never an exception)."""
        if text is None:
            return None
        try:
            data: Any = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or not data.get("uid") or not data.get("owner"):
            return None
        return cls(uid=str(data["uid"]), owner=str(data["owner"]), value=str(data.get("value", "")))

    def tag(self) -> str:
        """`<uid> <namespace>/<name>`, for an S3 tag value (256 characters at most)."""
        return f"{self.uid} {self.owner}"[:256]

    @classmethod
    def from_tag(cls, text: str | None) -> Claim | None:
        uid, _, owner = (text or "").partition(" ")
        return cls(uid=uid, owner=owner) if uid and owner else None


class Verdict(Enum):
    """What a claimant may do with a thing, given the claim recorded on it."""

    FREE = "free"  # no claim: record ours, then manage it
    OURS = "ours"  # our claim (update its value if ours changed)
    SHARED = "shared"  # another owner wants the same value: nothing to change, nothing to claim
    CONFLICT = "conflict"  # another owner wants another value: change nothing, say who


def judge(claimant: Claimant, claim: Claim | None, same_value: bool) -> Verdict:
    """The verdict for `claimant` on a thing carrying `claim`; `same_value` tells whether the
    claimant's desired value equals the owner's."""
    if claim is None:
        return Verdict.FREE
    if claim.uid == claimant.uid:
        return Verdict.OURS
    return Verdict.SHARED if same_value else Verdict.CONFLICT


def digest(value: Any) -> str:
    """A short stable digest of a JSON-able value (a table spec), to compare desired values."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def table_claim(comment: str | None) -> Claim | None:
    """The claim recorded in a table's comment (its `lokifi-storage: managed by ...` line)."""
    match = _TABLE_LINE.search(comment or "")
    if match is None:
        return None
    return Claim(uid=match.group(2), owner=match.group(1), value=match.group(3))


def with_table_claim(comment: str | None, claim: Claim | None) -> str | None:
    """`comment` with its claim line replaced by `claim`'s (or removed); the admin's own text
    is kept as it was. None when nothing is left (the comment is then removed)."""
    kept = [line for line in (comment or "").split("\n") if not _TABLE_LINE.fullmatch(line)]
    while kept and not kept[-1].strip():
        kept.pop()
    if claim is not None:
        kept.append(f"{TABLE_CLAIM_PREFIX}{claim.owner} uid={claim.uid} spec={claim.value}")
    text = "\n".join(kept)
    return text or None
