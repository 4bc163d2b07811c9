"""The spec fuzzer's generation: reproducible, every case refused by the models, every kind
tried."""

from __future__ import annotations

from faults import spec_fuzz


def test_a_seed_gives_the_same_specs() -> None:
    first = spec_fuzz.generate(60, seed=3)
    second = spec_fuzz.generate(60, seed=3)
    assert [c.spec for c in first.cases] == [c.spec for c in second.cases]
    assert [c.spec for c in first.cases] != [c.spec for c in spec_fuzz.generate(60, 4).cases]


def test_every_case_is_refused_by_the_models_and_every_mutation_kind_is_tried() -> None:
    report = spec_fuzz.generate(500, seed=1)
    assert len(report.cases) == 500
    assert all(spec_fuzz.model_verdict(case.spec)[0] for case in report.cases)
    kinds = {case.mutation.kind for case in report.cases}
    assert {
        "wrong-type",
        "out-of-range",
        "bad-enum",
        "injection",
        "too-long",
        "unknown-field",
        "missing-required",
        "duplicate",
        "huge",
        "cross-field",
    } <= kinds, kinds


def test_the_huge_shapes_are_generated_and_refused_by_the_models() -> None:
    """`interval: day` with `premake: 366` and 256 sub-ranges: 93,696 partitions made ahead."""
    described = {c.mutation.describe(): c for c in spec_fuzz.generate(500, seed=1).cases}
    huge = [c for d, c in described.items() if "premake = 366" in d and '"day"' in d]
    assert huge, sorted(described)
    assert "premake x subpartitionBy.count (93696)" in huge[0].model_error
