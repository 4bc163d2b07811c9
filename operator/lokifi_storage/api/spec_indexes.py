"""The indexes a managed table keeps: B-tree, full-text GIN, and partial-index predicates.

They sit apart from the table itself because they have rules of their own (exactly one kind
per index, each key column once) and because the index planner reads them without the rest of
the table's spec.
"""

from __future__ import annotations

from typing import Final

from pydantic import ConfigDict, Field, model_validator

from lokifi_storage.api.names import Identifier, IndexColumn, index_column_name
from lokifi_storage.api.spec_base import SpecModel, cel, cel_rules, duplicates, spec_error

# PostgreSQL's INDEX_MAX_KEYS.
MAX_INDEX_COLUMNS: Final = 32


class FullTextSpec(SpecModel):
    """A GIN index on to_tsvector(language, column)."""

    column: Identifier = Field(description="Text column to index.")
    language: Identifier = Field(
        default="english", description="Text-search configuration, e.g. english or simple."
    )


class WhereSpec(SpecModel):
    """A partial-index predicate: column = value.

    `equals` is true/false, a whole number or a string; a list, an object or a fraction is
    refused.
    """

    column: Identifier = Field(description="Column compared in the predicate.")
    equals: bool | int | str = Field(
        description="Value the column must equal: true/false, a whole number or a string.",
        # Three scalar types fit a structural schema only as an untyped field, which CEL cannot
        # see; these keywords keep it a scalar instead (each applies only to its own JSON type).
        json_schema_extra={
            "x-kubernetes-preserve-unknown-fields": True,
            "maxProperties": 0,
            "maxItems": 0,
            "multipleOf": 1,
            "not": {"enum": [{}, []]},
        },
    )


class IndexSpec(SpecModel):
    """An index kept on the parent table and every partition. Give exactly one of `columns`
    (a B-tree index) or `fullText` (a GIN index)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel(
                "has(self.fullText) != (has(self.columns) && size(self.columns) > 0)",
                "an index needs exactly one of columns (B-tree) or fullText (GIN)",
            ),
        )
    )

    name: Identifier = Field(
        description="Index name on the parent; partitions get derived names. PostgreSQL index "
        "names are unique per schema, so two tables of one schema cannot share one."
    )
    columns: list[IndexColumn] = Field(
        default_factory=list,
        max_length=MAX_INDEX_COLUMNS,
        description='Key columns in order, each optionally followed by " ASC" or " DESC" '
        'and " NULLS FIRST" or " NULLS LAST".',
    )
    fullText: FullTextSpec | None = Field(default=None, description="Full-text GIN index.")
    where: WhereSpec | None = Field(default=None, description="Makes the index partial.")

    @model_validator(mode="after")
    def _one_kind(self) -> IndexSpec:
        if bool(self.columns) == (self.fullText is not None):
            raise spec_error(
                "index {name!r} needs exactly one of columns (a B-tree index) or fullText "
                "(a GIN index); write one and remove the other",
                name=self.name,
            )
        repeated = duplicates(index_column_name(key) for key in self.columns)
        if repeated:
            raise spec_error(
                "index {name!r} lists column(s) {repeated} more than once in columns",
                name=self.name,
                repeated=", ".join(repeated),
            )
        return self
