"""Who manages a shared thing: the first claimant owns it, an equal value shares, a different
one conflicts; claims survive the round trip through a Redis field, an S3 tag, a table comment."""

from __future__ import annotations

from lokifi_storage.domain.claims import (
    Claim,
    Claimant,
    Verdict,
    digest,
    judge,
    table_claim,
    with_table_claim,
)

A = Claimant(uid="11111111-aaaa", namespace="team-a", name="prod")
B = Claimant(uid="22222222-bbbb", namespace="team-b", name="prod")


def test_first_claims_owner_keeps_equal_shares_different_conflicts() -> None:
    assert judge(A, None, same_value=False) is Verdict.FREE
    owned = A.claim("2147483648")
    assert judge(A, owned, same_value=False) is Verdict.OURS
    assert judge(B, owned, same_value=True) is Verdict.SHARED
    assert judge(B, owned, same_value=False) is Verdict.CONFLICT


def test_the_same_name_in_another_cluster_is_another_owner() -> None:
    twin = Claimant(uid="33333333-cccc", namespace="team-a", name="prod")
    assert judge(twin, A.claim("x"), same_value=False) is Verdict.CONFLICT


def test_claims_round_trip_through_a_hash_field_and_a_tag() -> None:
    claim = A.claim("allkeys-lru")
    assert Claim.decode(claim.encode()) == claim
    assert Claim.from_tag(claim.tag()) == Claim(uid=A.uid, owner="team-a/prod")
    assert Claim.decode("not json") is None
    assert Claim.decode('{"uid": ""}') is None
    assert Claim.from_tag("") is None


def test_a_table_comment_keeps_the_admins_text_around_the_claim_line() -> None:
    text = with_table_claim("Chat messages.\nOwned by the chat team.", A.claim("abc"))
    assert text == (
        "Chat messages.\nOwned by the chat team.\n"
        "lokifi-storage: managed by team-a/prod uid=11111111-aaaa spec=abc"
    )
    assert table_claim(text) == A.claim("abc")
    moved = with_table_claim(text, B.claim("def"))
    assert table_claim(moved) == B.claim("def")
    assert moved is not None
    assert moved.count("lokifi-storage:") == 1
    assert with_table_claim(text, None) == "Chat messages.\nOwned by the chat team."
    assert with_table_claim(with_table_claim(None, A.claim("abc")), None) is None
    assert table_claim("lokifi-storage is great") is None


def test_digest_is_stable_and_order_independent() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})
