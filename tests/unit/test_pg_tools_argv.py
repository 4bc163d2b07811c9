"""pg_dump/pg_restore command lines never carry the password; it travels in PGPASSWORD."""

from __future__ import annotations

import pytest

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.tools import (
    connection_args,
    pg_dump_argv,
    pg_restore_argv,
    with_database,
)

URL = "postgresql+asyncpg://app:s3cr%40t%20pw@db.example:6432/lokifi?sslmode=require"


def test_the_password_moves_from_the_url_to_the_environment() -> None:
    conn = connection_args(URL)
    assert conn.secret_env == {"PGPASSWORD": "s3cr@t pw"}
    assert "s3cr" not in conn.conninfo
    assert "host=db.example" in conn.conninfo
    assert "port=6432" in conn.conninfo
    assert "sslmode=require" in conn.conninfo
    assert conn.target == "app@db.example:6432/lokifi"


@pytest.mark.parametrize(
    "argv",
    [
        pg_dump_argv("/usr/bin/pg_dump", connection_args(URL), snapshot="00000003-1"),
        pg_restore_argv(
            "/usr/bin/pg_restore", connection_args(URL), jobs=4, source="restore.dump", clean=True
        ),
    ],
)
def test_no_argument_of_the_tools_contains_the_password(argv: list[str]) -> None:
    assert not any("s3cr" in arg for arg in argv)
    assert "--no-password" in argv


def test_dumps_are_custom_format_and_uncompressed_in_the_snapshot_given() -> None:
    argv = pg_dump_argv("pg_dump", connection_args(URL), snapshot="00000003-000001A2-1")
    assert "--format=custom" in argv
    assert "--compress=0" in argv
    assert "--snapshot=00000003-000001A2-1" in argv


def test_restores_stop_at_the_first_error_and_run_parallel_only_from_a_file() -> None:
    argv = pg_restore_argv("pg_restore", connection_args(URL), jobs=3, source="archive.dump")
    assert "--exit-on-error" in argv
    assert "--jobs=3" in argv
    assert argv[-1] == "archive.dump"
    serial = pg_restore_argv("r", connection_args(URL))
    assert not any(a.startswith("--jobs") for a in serial)
    assert "--single-transaction" in serial
    assert "--single-transaction" not in argv


def test_another_database_keeps_server_and_credentials() -> None:
    other = with_database(URL, "lokifi_verify_1")
    conn = connection_args(other)
    assert "dbname=lokifi_verify_1" in conn.conninfo
    assert conn.secret_env == {"PGPASSWORD": "s3cr@t pw"}


def test_an_unparseable_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ClientError) as raised:
        connection_args("postgresql://u:hunter2@[::1/db")
    assert "hunter2" not in str(raised.value)
