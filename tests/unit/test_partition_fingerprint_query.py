"""The fingerprint statement carries its request as literals (it is prepared once per
connection, and without parameters PostgreSQL never plans it again)."""

from __future__ import annotations

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.catalog_query import (
    FINGERPRINT_QUERY,
    CatalogRequest,
    fingerprint_query,
    request_for,
)


def spec(name: str, **fields: object) -> TableSpec:
    return TableSpec.model_validate(
        {"name": name, "partitionBy": {"column": "created_at", "interval": "month"}, **fields}
    )


def test_every_parameter_is_written_in_as_a_quoted_literal() -> None:
    """The client takes qualified names from anywhere (not only validated specs)."""
    odd = QName("we'ird", "ai_messages")
    request = CatalogRequest({"t": odd}, {}, [("we'ird", "ai_messages_"), ("x,y", "t_")])
    text = fingerprint_query(request).as_string(None)
    assert "%(" not in text
    assert "'{we''ird}'::text[]" in text  # the schema, quoted inside the array literal
    assert "'{ai_messages}'::text[]" in text
    assert "'^p[0-9]{4}" in text  # the suffix pattern of our partition names
    assert """'{we''ird,"x,y"}'::text[]""" in text  # where orphans are looked for


def test_only_the_parameters_differ_from_the_query() -> None:
    text = fingerprint_query(request_for([spec("ai_messages")])).as_string(None)
    template = FINGERPRINT_QUERY.as_string(None)
    assert text.count("::text[]") == template.count("::text[]")
    assert text.replace(" ", "").count("SELECT") == template.replace(" ", "").count("SELECT")
