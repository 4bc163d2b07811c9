"""A slice of the fuzzed-spec campaign (`make faults` runs 500): 100 invalid specs, one mutation
each of a shipped example, applied with a server-side dry run. Every one is refused by the API
server with the field named; none that the models refuse is admitted."""

from __future__ import annotations

from faults import spec_fuzz

from stackfixtures import StackEnv


def test_every_fuzzed_invalid_spec_is_refused_at_admission_naming_the_field(
    kube_stack: StackEnv, crd: str, k8s_namespace: str
) -> None:
    report = spec_fuzz.generate(100, seed=7)
    spec_fuzz.judge(report.cases, kube_stack.kubectl_argv(), k8s_namespace)

    text = "\n".join(spec_fuzz.summary(report))
    assert report.count(spec_fuzz.ADMITTED) == 0, text
    assert report.count(spec_fuzz.REFUSED_UNNAMED) == 0, text
    assert report.count(spec_fuzz.REFUSED_NAMED) == 100, text
