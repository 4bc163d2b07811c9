"""The one translation of driver errors: lost connections, server refusals, and no secrets."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg_errors

from lokifi_storage.clients.errors import ClientError, ConnectionFailed
from lokifi_storage.clients.postgres.connection import translate, translated


def test_a_lost_connection_is_connection_failed_naming_what_was_under_way() -> None:
    error = translate(psycopg.OperationalError("server closed"), "primary u@db:5432/app", "COPY")
    assert isinstance(error, ConnectionFailed)
    assert error.message == "primary u@db:5432/app: connection lost during COPY"


def test_a_refused_statement_keeps_the_callers_reason_and_the_error_type() -> None:
    error = translate(pg_errors.UndefinedTable("no"), "u@db:5432/app", "size query", reason="X")
    assert type(error) is ClientError
    assert error.reason == "X"
    assert error.message == "u@db:5432/app: size query failed (UndefinedTable)"


def test_a_url_in_the_driver_text_does_not_reach_the_message() -> None:
    error = translate(
        psycopg.OperationalError("cannot reach postgresql://u:hunter2@db/app"), "primary", "query"
    )
    assert "hunter2" not in error.message


def test_translated_passes_the_clients_own_errors_through() -> None:
    with pytest.raises(ConnectionFailed), translated("primary", "query"):
        raise ConnectionFailed("already ours")
    with pytest.raises(ClientError, match="catalog query failed"), translated("p", "catalog query"):
        raise pg_errors.SyntaxError("bad")
