"""Fuzzed specs: one mutation each of a valid LokifiStorage, judged by the models and the API
server.

The promise under test is that a bad spec never reaches the servers: the API server refuses it
at admission naming the field, or, where the CRD's schema and CEL rules cannot say it, the
operator reports Stalled/InvalidSpec once and does not retry in a loop.

Mutations are generated from the CRD's own schema walked alongside the shipped examples, so a
field added to the models is fuzzed without touching this file: a wrong JSON type for every
value, values just outside every minimum and maximum, an unknown enum value, strings that break
every pattern (SQL and shell injection, newlines, upper case, 300 characters), an unknown key in
every object, every required key removed, lists past their maxItems or with a duplicate key,
and sibling numbers drawn at random inside their ranges so that cross-field rules break. A
mutation the models accept is not an invalid spec and is not counted; the run goes on until it
has `count` specs the models refuse.

Each invalid spec is then applied with `kubectl apply --server-side --dry-run=server` (in
batches: one kubectl per batch, each object its own name). Verdicts per spec:
- refused, and the error names the field (the mutated key, or a key pydantic's error names);
- refused without naming it (a defect: the admin cannot tell what to fix);
- admitted although the models refuse it (the differential: the CRD should have said no).
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lokifi_storage.api.crd import resource_schema
from lokifi_storage.api.spec import LokifiStorageSpec

REPO = Path(__file__).resolve().parents[1]
BASES = (
    REPO / "examples" / "lokifistorage-full.yaml",
    REPO / "examples" / "lokifistorage-minimal.yaml",
)

Path_ = tuple[str | int, ...]

# Strings that break a pattern and would do harm if they reached SQL, a shell or a URL unquoted.
HOSTILE_STRINGS = (
    "ai_messages; DROP TABLE users",
    "x'); DROP TABLE ai_messages; --",
    'a"b',
    "$(reboot)",
    "line\nbreak",
    "UPPER_Case",
    "../../etc/passwd",
    "",
    " ",
    "x" * 300,
    "ünïcödé",
    "-leading-dash",
)


@dataclass(frozen=True)
class Mutation:
    """One change to a valid spec: set `path` to `value`, or delete it when `delete`."""

    kind: str
    path: Path_
    value: Any = None
    delete: bool = False
    extra: tuple[tuple[Path_, Any], ...] = ()

    def describe(self) -> str:
        where = ".".join(str(p) for p in self.path) or "spec"
        if self.delete:
            return f"{self.kind}: remove spec.{where}"
        text = json.dumps(self.value)
        if len(text) > 40:
            text = text[:37] + "..."
        more = "".join(f", {'.'.join(map(str, p))}={json.dumps(v)}" for p, v in self.extra)
        return f"{self.kind}: spec.{where} = {text}{more}"


@dataclass
class Case:
    """One invalid spec and what each judge said of it."""

    index: int
    mutation: Mutation
    spec: Any
    model_error: str
    names: frozenset[str]
    verdict: str = ""
    server_message: str = ""

    @property
    def name(self) -> str:
        return f"fz-{self.index:04d}"


@dataclass
class FuzzReport:
    cases: list[Case] = field(default_factory=list)
    mutations_tried: int = 0
    accepted_by_models: int = 0

    def count(self, verdict: str) -> int:
        return sum(1 for case in self.cases if case.verdict == verdict)

    @property
    def differential(self) -> list[Case]:
        return [case for case in self.cases if case.verdict == ADMITTED]


REFUSED_NAMED = "refused, field named"
REFUSED_UNNAMED = "refused, field not named"
ADMITTED = "admitted, models refuse"


# --- generation (pure) ---------------------------------------------------------------------------


def base_specs() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text())["spec"] for path in BASES]


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = resource_schema()["properties"]["spec"]
    return schema


def _wrong_types(value: Any, schema: dict[str, Any]) -> list[Any]:
    """Values of another JSON type that neither the models nor the schema should coerce."""
    if schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        return [[1], {"k": "v"}]
    kind = schema.get("type")
    if kind == "object":
        return ["an-object-was-expected", [1, 2]]
    if kind == "array":
        return ["a-list-was-expected", {"k": "v"}]
    if kind in {"integer", "number"}:
        return ["not-a-number", [1], True]
    if kind == "boolean":
        return ["maybe", 2]
    if kind == "string":
        return [12345, ["x"], {"k": "v"}]
    return []


def _scalar_mutations(path: Path_, value: Any, schema: dict[str, Any]) -> Iterator[Mutation]:
    kind = schema.get("type")
    if kind in {"integer", "number"}:
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None:
            yield Mutation("out-of-range", path, low - 1)
        if high is not None:
            yield Mutation("out-of-range", path, high + 1)
        yield Mutation("out-of-range", path, -(10**9))
        yield Mutation("huge", path, 10**15)
    if kind == "string":
        if "enum" in schema:
            yield Mutation("bad-enum", path, "Bogus")
            yield Mutation("bad-enum", path, str(value).lower() + "x")
        if "pattern" in schema or "format" in schema:
            for text in HOSTILE_STRINGS:
                yield Mutation("injection", path, text)
        if "maxLength" in schema:
            yield Mutation("too-long", path, "a" * (int(schema["maxLength"]) + 1))
        if "minLength" in schema and int(schema["minLength"]) > 0:
            yield Mutation("too-short", path, "")


def _walk(value: Any, schema: dict[str, Any], path: Path_) -> Iterator[Mutation]:
    for wrong in _wrong_types(value, schema):
        yield Mutation("wrong-type", path, wrong)
    if isinstance(value, dict) and "properties" in schema:
        props: dict[str, Any] = schema["properties"]
        yield Mutation("unknown-field", (*path, "bogusField"), 1)
        for key in schema.get("required", []):
            if key in value:
                yield Mutation("missing-required", (*path, key), delete=True)
        for key, child in value.items():
            if key in props:
                yield from _walk(child, props[key], (*path, key))
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        yield Mutation("unknown-key", (*path, "bogus-key"), "1")
        for key, child in value.items():
            yield from _walk(child, schema["additionalProperties"], (*path, key))
    elif isinstance(value, list) and "items" in schema:
        items: dict[str, Any] = schema["items"]
        if "maxItems" in schema and value:
            too_many = [copy.deepcopy(value[0]) for _ in range(int(schema["maxItems"]) + 1)]
            yield Mutation("too-many", path, too_many)
        if schema.get("x-kubernetes-list-type") in {"map", "set"} and value:
            yield Mutation("duplicate", path, [*value, copy.deepcopy(value[0])])
        for i, child in enumerate(value):
            yield from _walk(child, items, (*path, i))
    else:
        yield from _scalar_mutations(path, value, schema)


def _numeric_sites(value: Any, schema: dict[str, Any], path: Path_) -> Iterator[tuple[Path_, int]]:
    """Integer leaves with their upper bound for random in-range values (cross-field rules)."""
    if isinstance(value, dict) and "properties" in schema:
        for key, child in value.items():
            if key in schema["properties"]:
                yield from _numeric_sites(child, schema["properties"][key], (*path, key))
    elif isinstance(value, list) and "items" in schema:
        for i, child in enumerate(value):
            yield from _numeric_sites(child, schema["items"], (*path, i))
    elif schema.get("type") == "integer" and isinstance(value, int):
        yield path, int(schema.get("maximum", 10_000))


def _cross_field(base: dict[str, Any], rng: random.Random) -> Iterator[Mutation]:
    """The shapes the issue of huge sizes names, then sibling numbers drawn at random."""
    for t, table in enumerate(base.get("postgres", {}).get("tables", [])):
        at: Path_ = ("postgres", "tables", t)
        if "partitionBy" in table and "subpartitionBy" in table:
            day = ((*at, "partitionBy", "interval"), "day")
            count = ((*at, "subpartitionBy", "count"), 256)
            yield Mutation("huge", (*at, "premake"), 366, extra=(day, count))
            yield Mutation("huge", (*at, "premake"), 17, extra=(count,))
    sites = list(_numeric_sites(base, spec_schema(), ()))
    while sites:
        path, high = rng.choice(sites)
        yield Mutation("cross-field", path, rng.randint(0, min(high, 3000) + 1))


def apply_mutation(base: dict[str, Any], mutation: Mutation) -> Any:
    if not mutation.path:
        return copy.deepcopy(mutation.value)  # the whole spec of the wrong type
    spec = copy.deepcopy(base)
    for path, value in ((mutation.path, mutation.value), *mutation.extra):
        node: Any = spec
        for key in path[:-1]:
            node = node[key]
        if mutation.delete and path == mutation.path:
            del node[path[-1]]
        else:
            node[path[-1]] = copy.deepcopy(value)
    return spec


def model_verdict(spec: Any) -> tuple[str, frozenset[str]]:
    """The models' error (empty when they accept) and every key name the error points at."""
    try:
        LokifiStorageSpec.model_validate(spec)
    except ValidationError as error:
        names = {str(p) for item in error.errors() for p in item["loc"] if isinstance(p, str)}
        text = "; ".join(
            f"{'.'.join(map(str, item['loc']))}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        return text, frozenset(names)
    return "", frozenset()


def _interleave_kinds(mutations: list[Mutation], rng: random.Random) -> list[Mutation]:
    """Shuffled, then the n-th mutation of every kind before the (n+1)-th of any: a run of any
    length tries every kind, not mostly the kind with the most sites."""
    rng.shuffle(mutations)
    rank: dict[str, int] = {}
    keyed = []
    for mutation in mutations:
        rank[mutation.kind] = rank.get(mutation.kind, 0) + 1
        keyed.append((rank[mutation.kind], mutation))
    return [mutation for _, mutation in sorted(keyed, key=lambda pair: pair[0])]


def generate(count: int, seed: int) -> FuzzReport:
    """`count` specs the models refuse, each one mutation away from a shipped example."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    report = FuzzReport()
    sources: list[tuple[dict[str, Any], Iterator[Mutation]]] = []
    for i, base in enumerate(base_specs()):
        cross = _cross_field(base, random.Random(seed + i))  # noqa: S311
        mutations = [*_walk(base, spec_schema(), ()), *itertools.islice(cross, count // 4)]
        sources.append((base, iter(_interleave_kinds(mutations, rng))))
    seen: set[str] = set()
    turn = 0
    while sources and len(report.cases) < count and report.mutations_tried < count * 50:
        base, mutations = sources[turn % len(sources)]
        turn += 1
        mutation = next(mutations, None)
        if mutation is None:
            sources = [s for s in sources if s[1] is not mutations]
            continue
        spec = apply_mutation(base, mutation)
        key = json.dumps(spec, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        report.mutations_tried += 1
        error, names = model_verdict(spec)
        if not error:
            report.accepted_by_models += 1
            continue
        own = {str(p) for p in mutation.path if isinstance(p, str)} or {"spec"}
        report.cases.append(Case(len(report.cases), mutation, spec, error, frozenset(names | own)))
    return report


# --- the API server ------------------------------------------------------------------------------

# kubectl prints one "Error from server" entry per refused object, naming it either as
# `"fz-0001" is invalid: ...` (schema, CEL) or `(namespace/fz-0001; ...): ...` (typed patch).
_ENTRY = re.compile(r"^Error from server", re.MULTILINE)
_ENTRY_NAME = re.compile(r'"(fz-\d{4})" is invalid|/(fz-\d{4});')
_OK = re.compile(r"/(fz-\d{4}) serverside-applied")


def _named(case: Case, message: str) -> bool:
    """The message names a key the mutation touched or the models' error points at."""
    return any(re.search(rf"(^|[.\[\s\"']){re.escape(n)}\b", message) for n in case.names)


def _errors_by_name(stderr: str) -> dict[str, str]:
    starts = [m.start() for m in _ENTRY.finditer(stderr)]
    errors = {}
    for start, end in zip(starts, [*starts[1:], len(stderr)][: len(starts)], strict=True):
        entry = stderr[start:end].strip()
        found = _ENTRY_NAME.search(entry)
        if found:
            errors[found.group(1) or found.group(2)] = entry
    return errors


def judge(cases: Sequence[Case], kubectl: Sequence[str], namespace: str, batch: int = 50) -> None:
    """Dry-run every case against the API server and set its verdict."""
    for start in range(0, len(cases), batch):
        chunk = cases[start : start + batch]
        items = [
            {
                "apiVersion": "storage.lokifi.ai/v1alpha1",
                "kind": "LokifiStorage",
                "metadata": {"name": case.name, "namespace": namespace},
                "spec": case.spec,
            }
            for case in chunk
        ]
        result = subprocess.run(
            [*kubectl, "apply", "--server-side", "--dry-run=server", "-f", "-"],
            # One document each: a List would be validated whole by kubectl before sending.
            input="\n---\n".join(json.dumps(item) for item in items),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        errors = _errors_by_name(result.stderr)
        admitted = set(_OK.findall(result.stdout))
        for case in chunk:
            if case.name in errors:
                case.server_message = errors[case.name]
                named = _named(case, case.server_message)
                case.verdict = REFUSED_NAMED if named else REFUSED_UNNAMED
            elif case.name in admitted:
                case.verdict = ADMITTED
            else:
                raise RuntimeError(
                    f"kubectl said nothing of {case.name}: rc={result.returncode}\n"
                    f"{result.stderr[-2000:]}"
                )


def summary(report: FuzzReport) -> list[str]:
    lines = [
        f"mutations tried:            {report.mutations_tried}",
        f"  accepted by the models:   {report.accepted_by_models} (valid, not counted)",
        f"invalid specs:              {len(report.cases)}",
        f"  refused, field named:     {report.count(REFUSED_NAMED)}",
        f"  refused, field not named: {report.count(REFUSED_UNNAMED)}",
        f"  admitted (differential):  {report.count(ADMITTED)}",
    ]
    kinds: dict[str, int] = {}
    for case in report.cases:
        kinds[case.mutation.kind] = kinds.get(case.mutation.kind, 0) + 1
    lines.append("by mutation: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    for case in report.cases:
        if case.verdict == REFUSED_UNNAMED:
            lines.append(f"  NOT NAMED {case.mutation.describe()}: {case.server_message[:200]}")
    for case in report.differential:
        lines.append(f"  ADMITTED  {case.mutation.describe()}: models say {case.model_error}")
    return lines
