"""The claims of managed tables: which LokifiStorage manages which table (domain/claims.py).

A claim is the last line of the table's comment, `lokifi-storage: managed by <ns>/<name>
uid=<uid> spec=<digest>` (the admin's own comment text is kept). Two resources may share a table
only with the same table spec; otherwise the second one is a Conflict naming the owner and sends
nothing to the table. A resource releases the claims of the tables it no longer declares, and
all of them when it is deleted. Apart from reconcile/partitions.py, which calls these, as the
claims of Redis settings and of lifecycle rules are apart from their parts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.partitions import PartitionDatabase, open_partition_database
from lokifi_storage.domain.claims import (
    Claimant,
    Verdict,
    digest,
    judge,
    table_claim,
    with_table_claim,
)
from lokifi_storage.domain.partitions.catalog import ObservedTable, QName
from lokifi_storage.domain.partitions.index_plan import Problem

__all__ = ["release_claims", "release_table_claims", "settle_table_claims", "spec_digest"]


def spec_digest(spec: TableSpec) -> str:
    """What two resources must declare alike to share a table."""
    return digest(spec.model_dump(mode="json", by_alias=True, exclude_none=True))


def settle_table_claims(
    db: PartitionDatabase,
    tables: Sequence[TableSpec],
    observed: Mapping[str, ObservedTable],
    claimant: Claimant,
    done: list[str],
    failures: dict[str, ClientError],
    *,
    apply: bool = True,
) -> dict[str, Problem]:
    """Record the claims of the declared tables (each one recorded into `done`, each failure
    into `failures` by table); a Conflict problem per table another resource manages with
    another spec (nothing is sent to those). Without `apply`, only the check."""
    conflicts: dict[str, Problem] = {}
    for spec in tables:
        relation = observed[spec.name].relation
        if relation is None:
            continue
        mine = spec_digest(spec)
        claim = table_claim(relation.comment)
        verdict = judge(claimant, claim, claim is not None and claim.value == mine)
        if verdict is Verdict.CONFLICT and claim is not None:
            conflicts[spec.name] = Problem(
                Reason.CONFLICT,
                f"table {relation.qname} is managed by {claim.owner} with another table spec; "
                "this resource sends nothing to it (declare the same spec, or remove the table "
                "from one of the two; the claim is the last line of the table's comment)",
            )
        elif not apply:
            continue
        elif verdict is Verdict.FREE or (verdict is Verdict.OURS and claim and claim.value != mine):
            try:
                db.set_table_comment(
                    relation.qname, with_table_claim(relation.comment, claimant.claim(mine))
                )
            except ClientError as error:
                failures[spec.name] = error
                continue
            done.append(f"claimed table {relation.qname}")
    return conflicts


def release_claims(
    db: PartitionDatabase, claimant: Claimant, which: Callable[[QName], bool]
) -> list[str]:
    """Remove `claimant`'s claim from the tables `which` selects."""
    released = []
    for table, comment in db.claimed_tables(claimant.uid).items():
        claim = table_claim(comment)
        if claim is None or claim.uid != claimant.uid or not which(table):
            continue
        db.set_table_comment(table, with_table_claim(comment, None))
        released.append(f"released table {table}")
    return released


def release_table_claims(
    primary_url: str, claimant: Claimant, before_write: Callable[[str], None] | None = None
) -> list[str]:
    """Release every table claim of `claimant` (the resource is deleted), each statement
    asking `before_write` first."""
    with open_partition_database(primary_url) as db:
        db.before_write = before_write
        return release_claims(db, claimant, lambda _: True)
