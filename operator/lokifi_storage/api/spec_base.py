"""What every part of the spec shares: the model base, Secret references, enums, helpers.

Cross-field rules are written twice on purpose: a pydantic validator (the operator's reading,
with the fix in the message) and the same rule as CEL in `x-kubernetes-validations`, so that
`kubectl apply` of a bad resource is refused by the API server before the operator ever sees it.
`cel()` builds those rule entries; api/crd.py copies them into the CRD unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue
from pydantic_core import PydanticCustomError

from lokifi_storage.api.cron import cron_problem
from lokifi_storage.api.names import DnsSubdomain, SecretKey

Interval = Literal["day", "week", "month", "quarter", "year"]
Compression = Literal["gzip", "zstd", "lz4", "none"]
DeletionPolicy = Literal["Retain", "Delete"]
StorageClass = Literal[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
]
# S3 refuses STANDARD as a lifecycle transition target: objects start there.
TransitionStorageClass = Literal[
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
]


class SpecModel(BaseModel):
    """Base of every spec model: unknown fields are an error, camelCase names as in YAML."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def cel(
    rule: str, message: str, field_path: str | None = None, reason: str | None = None
) -> dict[str, JsonValue]:
    """One `x-kubernetes-validations` entry. `field_path` points the API server's error at a
    field below the object the rule is written on (e.g. `.archive.afterDays`)."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def cel_rules(*rules: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """`json_schema_extra` carrying CEL rules for a model's schema."""
    return {"x-kubernetes-validations": list(rules)}


def list_map(key: str) -> dict[str, JsonValue]:
    """`json_schema_extra` making a list a map keyed on `key`: server-side apply merges its
    entries by that key instead of replacing the whole list."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]}


# A list of unique scalars, merged as a set by server-side apply.
LIST_SET: Final[dict[str, JsonValue]] = {"x-kubernetes-list-type": "set"}


def spec_error(message: str, **context: Any) -> PydanticCustomError:
    """A validation error whose message is shown as written (no "Value error," prefix).

    `message` is a str.format template filled from `context` here, so values are shown with
    Python's repr where the template says `!r`; pydantic then leaves the text alone.
    """
    return PydanticCustomError("lokifi_spec", message.format(**context))


def duplicates(names: Iterable[str]) -> list[str]:
    """Names that occur more than once, in first-seen order."""
    counts = Counter(names)
    return [name for name, count in counts.items() if count > 1]


def check_schedule(value: str) -> str:
    """A CronJob schedule Kubernetes accepts and that fires at some point."""
    problem = cron_problem(value)
    if problem is not None:
        raise spec_error(
            "{value!r} is not a valid cron schedule: {problem}. Write five fields "
            "'minute hour day-of-month month day-of-week' (e.g. '0 2 * * *' for 02:00 every "
            "day) or a macro such as @daily",
            value=value,
            problem=problem,
        )
    return value


# A loose shape check for the API server; the operator's parser (api/cron.py) is exact.
SCHEDULE_PATTERN: Final = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|[0-9*,/-]+ +[0-9*,/-]+ +[0-9*?,/-]+ +[0-9A-Za-z*,/-]+ +[0-9A-Za-z*?,/-]+)$"
)

Schedule = Annotated[
    str,
    AfterValidator(check_schedule),
    Field(json_schema_extra={"pattern": SCHEDULE_PATTERN, "maxLength": 128}),
]


class SecretKeyRef(SpecModel):
    """A key inside a Secret in the resource's namespace. The operator reads it; the value
    never appears in status, events or logs."""

    name: DnsSubdomain = Field(description="Name of the Secret.")
    key: SecretKey = Field(description="Key inside the Secret's data.")


class SecretRef(SpecModel):
    """A whole Secret in the resource's namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret.")
