"""The lifecycle merge: declared rules replace theirs by id; foreign rules stay."""

from __future__ import annotations

from typing import Any

from lokifi_storage.api.spec import LifecycleRuleSpec, TransitionSpec
from lokifi_storage.domain.lifecycle import canonical_rule, plan_lifecycle, render_rule

SEED = LifecycleRuleSpec.model_validate(
    {
        "id": "ArchiveOldFiles",
        "transitions": [
            {"afterDays": 365, "storageClass": "GLACIER"},
            {"afterDays": 2555, "storageClass": "DEEP_ARCHIVE"},
        ],
        "abortIncompleteUploadsAfterDays": 7,
    }
)
SCRATCH = LifecycleRuleSpec.model_validate(
    {"id": "ExpireScratch", "prefix": "scratch/", "expirationDays": 3, "enabled": False}
)
FOREIGN: dict[str, Any] = {
    "ID": "team-logs",
    "Filter": {"Prefix": "logs/"},
    "Status": "Enabled",
    "Expiration": {"Days": 14},
}


def test_the_seed_rule_renders_to_the_s3_document() -> None:
    assert render_rule(SEED) == {
        "ID": "ArchiveOldFiles",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "Transitions": [
            {"Days": 365, "StorageClass": "GLACIER"},
            {"Days": 2555, "StorageClass": "DEEP_ARCHIVE"},
        ],
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    assert render_rule(SCRATCH)["Status"] == "Disabled"
    assert render_rule(SCRATCH)["Expiration"] == {"Days": 3}


def test_an_empty_bucket_gets_every_declared_rule() -> None:
    plan = plan_lifecycle("media", [SEED, SCRATCH], [])
    assert plan.write == "put"
    assert plan.added == ["ArchiveOldFiles", "ExpireScratch"]
    assert plan.rules == [render_rule(SEED), render_rule(SCRATCH)]


def test_the_same_rule_written_differently_by_s3_is_not_a_difference() -> None:
    as_s3_returns = {
        "Expiration": {"Days": 3, "ExpiredObjectDeleteMarker": False},
        "ID": "ExpireScratch",
        "Prefix": "scratch/",  # the legacy, pre-Filter form
        "Status": "Disabled",
        "NoncurrentVersionTransitions": [],
    }
    assert canonical_rule(as_s3_returns) == canonical_rule(render_rule(SCRATCH))
    plan = plan_lifecycle("media", [SCRATCH], [as_s3_returns])
    assert plan.write is None


def test_transitions_in_another_order_are_the_same_rule() -> None:
    shuffled = render_rule(SEED)
    shuffled["Transitions"] = list(reversed(shuffled["Transitions"]))
    assert plan_lifecycle("media", [SEED], [shuffled]).write is None


def test_a_changed_managed_rule_is_replaced_in_place_and_foreign_rules_stay_in_order() -> None:
    drifted = render_rule(SEED) | {"Status": "Disabled"}
    plan = plan_lifecycle("media", [SEED], [FOREIGN, drifted, {"Prefix": "tmp/", "Status": "x"}])
    assert plan.write == "put"
    assert plan.replaced == ["ArchiveOldFiles"]
    assert plan.rules == [FOREIGN, render_rule(SEED), {"Prefix": "tmp/", "Status": "x"}]
    assert plan.foreign == ["team-logs", "#3 (no id)"]
    assert "kept 2 rule(s) it does not manage" in plan.describe()


def test_a_managed_rule_with_extra_s3_settings_is_a_difference() -> None:
    extended = render_rule(SEED) | {"NoncurrentVersionExpiration": {"NoncurrentDays": 5}}
    assert plan_lifecycle("media", [SEED], [extended]).replaced == ["ArchiveOldFiles"]


def test_only_rules_the_operator_set_before_are_removed_when_dropped_from_the_spec() -> None:
    current = [render_rule(SEED), render_rule(SCRATCH), FOREIGN]
    plan = plan_lifecycle(
        "media", [SEED], current, previously_managed=["ArchiveOldFiles", "ExpireScratch"]
    )
    assert plan.removed == ["ExpireScratch"]
    assert plan.rules == [render_rule(SEED), FOREIGN]
    assert plan.write == "put"
    assert plan.managed == ["ArchiveOldFiles"]


def test_removing_the_last_rule_deletes_the_configuration_instead_of_an_empty_put() -> None:
    plan = plan_lifecycle("media", [], [render_rule(SEED)], previously_managed=["ArchiveOldFiles"])
    assert plan.write == "delete"
    assert plan.rules == []


def test_a_bucket_that_already_matches_needs_no_write() -> None:
    plan = plan_lifecycle("media", [SEED], [FOREIGN, render_rule(SEED)])
    assert plan.write is None
    assert (
        plan.describe()
        == "bucket media: lifecycle rules unchanged; kept 1 rule(s) it does not manage"
    )


def test_a_rule_that_skipped_admission_is_refused_before_any_write() -> None:
    early = LifecycleRuleSpec.model_construct(
        id="TooEarly",
        prefix="",
        enabled=True,
        transitions=[TransitionSpec.model_construct(afterDays=10, storageClass="STANDARD_IA")],
        expirationDays=None,
        abortIncompleteUploadsAfterDays=None,
    )
    plan = plan_lifecycle("media", [early], [])
    assert plan.write is None
    assert plan.problems
    assert "TooEarly" in plan.problems[0]


def test_more_than_a_thousand_rules_in_the_merged_document_are_refused() -> None:
    foreign = [
        {"ID": f"f{i}", "Filter": {"Prefix": f"{i}/"}, "Status": "Enabled"} for i in range(1000)
    ]
    plan = plan_lifecycle("media", [SEED], foreign)
    assert plan.write is None
    assert "1001 lifecycle rules (1000 not managed by the operator)" in plan.problems[0]
