"""Every client error is one of clients/errors.py: callers catch by meaning, not by module."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import lokifi_storage.clients as clients_package
from lokifi_storage.clients import errors


def _client_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(clients_package.__path__, "lokifi_storage.clients.")
        if not info.ispkg
    ]


# The compiled SQLite reader's own error never leaves clients/sqlite_copy.py, which turns it into
# a ClientError (a C module cannot subclass a Python class of the package at import time).
_TRANSLATED_BY_THEIR_WRAPPER = {"lokifi_storage.clients._sqlite_copy"}


def test_no_client_module_defines_an_error_of_its_own() -> None:
    strays = [
        f"{module}.{name}"
        for module in _client_modules()
        if module not in _TRANSLATED_BY_THEIR_WRAPPER
        for name, obj in vars(importlib.import_module(module)).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == module
        and module != errors.__name__
    ]
    assert not strays, f"errors outside clients/errors.py: {strays}"


def test_every_error_of_the_tree_is_a_client_error() -> None:
    tree = [obj for obj in vars(errors).values() if inspect.isclass(obj)]
    assert all(
        issubclass(cls, errors.ClientError) for cls in tree if cls.__module__ == errors.__name__
    )


def test_one_lock_timeout_for_vacuum_and_partition_steps() -> None:
    assert issubclass(errors.LockTimeout, errors.Refused)
    assert errors.LockTimeout("x").reason == "LockTimeout"
