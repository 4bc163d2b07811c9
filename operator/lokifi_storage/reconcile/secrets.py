"""Credentials from the Secrets a spec references, read once per reconcile.

A part asks for a key (`value`) or a whole Secret (`data`); a missing Secret or key raises
`MissingSecretError`, whose reason (SecretNotFound / SecretKeyNotFound) and message name the Secret,
the key and the namespace, never a value. Each Secret is fetched at most once per reconcile,
however many parts read it, and only the Secrets the spec names are ever read. Every value read
is registered with the log filter (domain/redaction.py), so no log line of the process shows it.
"""

from __future__ import annotations

import threading
from typing import Any

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import SecretKeyRef
from lokifi_storage.builders.secret import decode_secret_data
from lokifi_storage.clients.kube import KubeClient
from lokifi_storage.domain.redaction import register_secret

__all__ = ["MissingSecretError", "SecretReader"]


class MissingSecretError(Exception):
    """A Secret or a key the spec references does not exist (yet)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SecretReader:
    """Lazy, cached, thread-safe reads of Secrets in one namespace."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._cache: dict[str, dict[str, str] | None] = {}
        self._lock = threading.Lock()

    def _secret(self, name: str) -> dict[str, str] | None:
        with self._lock:
            if name not in self._cache:
                obj: dict[str, Any] | None = self._kube.get_secret(self._namespace, name)
                data = None if obj is None else decode_secret_data(obj)
                for value in (data or {}).values():
                    register_secret(value)
                self._cache[name] = data
            return self._cache[name]

    def data(self, name: str) -> dict[str, str]:
        """Every key of Secret `name`; MissingSecretError when it does not exist."""
        secret = self._secret(name)
        if secret is None:
            raise MissingSecretError(
                Reason.SECRET_NOT_FOUND,
                f"Secret {name!r} not found in namespace {self._namespace!r}",
            )
        return secret

    def value(self, ref: SecretKeyRef) -> str:
        """The value of `ref.key` in Secret `ref.name`; MissingSecretError when one is missing."""
        secret = self.data(ref.name)
        if ref.key not in secret:
            raise MissingSecretError(
                Reason.SECRET_KEY_NOT_FOUND,
                f"Secret {ref.name!r} in namespace {self._namespace!r} has no key {ref.key!r}",
            )
        return secret[ref.key]

    def keys(self, name: str, keys: tuple[str, ...]) -> dict[str, str]:
        """Several keys of one Secret; MissingSecretError naming the first key that is absent."""
        return {key: self.value(SecretKeyRef(name=name, key=key)) for key in keys}

    def optional(self, ref: SecretKeyRef | None) -> str | None:
        """`value(ref)`, or None when `ref` is None."""
        return None if ref is None else self.value(ref)

    def names_read(self) -> list[str]:
        """The Secrets read so far (for tests and debugging; never their contents)."""
        with self._lock:
            return sorted(self._cache)
