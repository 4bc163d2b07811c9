"""The `spec.redis` part: the Redis Cluster's seed nodes and the allow-listed settings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Final

from pydantic import BeforeValidator, Field, JsonValue, WithJsonSchema, field_validator

from lokifi_storage.api.redis_settings import (
    ALLOWED_SETTINGS,
    EVICTION_POLICIES,
    FORBIDDEN_SETTINGS,
    MAX_SETTINGS,
    normalize_setting_value,
    setting_problem,
)
from lokifi_storage.api.spec_base import SecretKeyRef, SpecModel, cel, duplicates, spec_error

MAX_NODES: Final = 100
HOST_PATTERN: Final = r"^[A-Za-z0-9_.:\[\]-]+$"


def _cel_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


_FORBIDDEN: Final = _cel_list(sorted(FORBIDDEN_SETTINGS))
_ALLOWED: Final = _cel_list(sorted(ALLOWED_SETTINGS))

_SETTINGS_RULES: Final[list[JsonValue]] = [
    {
        "rule": f"!{_FORBIDDEN}.exists(k, k in self)",
        "messageExpression": (
            f"'redis.settings.' + {_FORBIDDEN}.filter(k, k in self)[0] + ' is never allowed: "
            "it writes files, changes persistence, networking or cluster topology, loads code "
            "or carries a credential; remove it'"
        ),
        "message": "this Redis setting is never allowed; remove it",
    },
    cel(
        f"self.all(k, k in {_ALLOWED})",
        "only allow-listed Redis settings may be set (lower case): "
        + ", ".join(sorted(ALLOWED_SETTINGS)),
    ),
    cel(
        "!('maxmemory-policy' in self) || self['maxmemory-policy'] in "
        + _cel_list(EVICTION_POLICIES),
        "redis.settings.maxmemory-policy must be one of " + ", ".join(EVICTION_POLICIES),
    ),
]

SettingValue = Annotated[
    str,
    BeforeValidator(normalize_setting_value),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]


class RedisNodeSpec(SpecModel):
    """A seed node of the Redis Cluster; the rest of the cluster is discovered from it."""

    host: str = Field(
        min_length=1,
        max_length=253,
        pattern=HOST_PATTERN,
        description="Host name or IP address, e.g. redis-0.redis.",
    )
    port: int = Field(default=6379, ge=1, le=65535, description="Client port.")


class RedisSpec(SpecModel):
    """Redis Cluster settings applied with CONFIG SET on every node."""

    nodes: list[RedisNodeSpec] = Field(
        min_length=1,
        max_length=MAX_NODES,
        description="Seed nodes; REDIS_CLUSTER_NODES in the connection Secret lists them.",
    )
    passwordSecretRef: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the cluster's password (requirepass)."
    )
    settings: dict[str, SettingValue] = Field(
        default_factory=dict,
        max_length=MAX_SETTINGS,
        description=(
            "CONFIG SET on every node. Only allow-listed, lower-case keys: "
            + ", ".join(sorted(ALLOWED_SETTINGS))
            + ". Values are strings or whole numbers; quote yes/no (e.g. activedefrag: "
            '"yes"). maxmemory takes Redis units: 2gb, 512mb.'
        ),
        json_schema_extra={"x-kubernetes-validations": _SETTINGS_RULES},
    )
    contextTTLSeconds: int = Field(
        default=3600,
        ge=1,
        description="REDIS_CONTEXT_TTL_SECONDS: how long the application caches a "
        "conversation context.",
    )

    @field_validator("settings")
    @classmethod
    def _allowed(cls, settings: dict[str, str]) -> dict[str, str]:
        problems = [
            problem
            for key, value in settings.items()
            if (problem := setting_problem(key, value)) is not None
        ]
        if problems:
            raise spec_error("{problems}", problems="; ".join(problems))
        return settings

    @field_validator("nodes")
    @classmethod
    def _unique_nodes(cls, nodes: list[RedisNodeSpec]) -> list[RedisNodeSpec]:
        repeated = duplicates(f"{node.host}:{node.port}" for node in nodes)
        if repeated:
            raise spec_error(
                "node(s) {repeated} listed more than once", repeated=", ".join(repeated)
            )
        return nodes
