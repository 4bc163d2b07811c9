"""What the probes may say about a database URL: host, port, database and user, nothing else."""

from __future__ import annotations

import pytest

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.connection import describe_target, libpq_url


def test_a_target_names_user_host_port_and_database_but_not_the_password() -> None:
    target = describe_target("postgresql+asyncpg://app:s3cr%40t@db-1:6543/lokifi")
    assert str(target) == "app@db-1:6543/lokifi"
    assert "s3cr" not in str(target)


def test_a_malformed_url_is_refused_without_echoing_any_part_of_it() -> None:
    with pytest.raises(ClientError) as caught:
        describe_target("app:TopSecret@db")
    assert "TopSecret" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_application_driver_schemes_are_handed_to_libpq_as_postgresql() -> None:
    assert libpq_url("postgresql+asyncpg://u@h/d") == "postgresql://u@h/d"
    assert libpq_url("postgres://u@h/d") == "postgres://u@h/d"
