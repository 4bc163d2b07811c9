"""The only code (beside Kopf's own watching) that talks to the Kubernetes API.

A thin JSON client on top of the `kubernetes` package's configuration loading (kubeconfig or
in-cluster service account, client certificates, token refresh) and its connection pool. Bodies
are plain dicts, exactly what kubectl shows, so builders need no generated model classes and
what is sent is what was built.

Conventions:
- create/apply/delete are idempotent: 404 on delete and "already there" on apply are success.
- owned objects are written with server-side apply (field manager `lokifi-storage-operator`,
  forced): one request creates or updates, and fields the operator stopped setting are removed.
- `.status` is written with a JSON merge patch of only the keys that changed; callers decide
  whether anything changed (domain/conditions.py) and call nothing when it did not.
- errors are the clients' error tree (clients/errors.py). Messages carry the verb, the object's
  kind/namespace/name and the API server's own message, never a request body: Secret values
  pass through this module and must never reach a log line or an exception.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from lokifi_storage.api.timestamps import rfc3339
from lokifi_storage.clients.errors import (
    AuthenticationFailed,
    ClientError,
    Conflict,
    ConnectionFailed,
    NotFound,
    Refused,
)
from lokifi_storage.domain.events import fit_message

__all__ = [
    "FIELD_MANAGER",
    "KubeClient",
    "ObjectRef",
    "Resource",
]

log = logging.getLogger(__name__)

FIELD_MANAGER: Final = "lokifi-storage-operator"
REQUEST_TIMEOUT: Final = urllib3.Timeout(connect=5.0, read=30.0)


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: group ('' for core), version, plural."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        path = f"{base}/namespaces/{urllib.parse.quote(namespace)}/{self.plural}"
        if name is not None:
            path += "/" + urllib.parse.quote(name)
        if sub is not None:
            path += "/" + sub
        return path


SECRETS: Final = Resource("", "v1", "secrets")
EVENTS: Final = Resource("", "v1", "events")
CRONJOBS: Final = Resource("batch", "v1", "cronjobs")
LEASES: Final = Resource("coordination.k8s.io", "v1", "leases")


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


class KubeClient:
    """Synchronous, thread-safe (one urllib3 pool) JSON client of the Kubernetes API."""

    def __init__(self, api_client: Any, field_manager: str = FIELD_MANAGER) -> None:
        self._api = api_client
        self._host = str(api_client.configuration.host).rstrip("/")
        self._field_manager = field_manager
        # Per thread: asked before each write the thread sends (writes_under).
        self._writes = threading.local()

    @classmethod
    def from_environment(
        cls, kubeconfig: str | None = None, pool_size: int | None = None
    ) -> KubeClient:
        """In-cluster service account when running in a pod, else the kubeconfig (KUBECONFIG).

        `pool_size`: connections kept to the API server; at least the threads that call the
        client at once (the operator's workers times the parts each runs in parallel), or
        urllib3 opens and discards one per request above it ("Connection pool is full").
        """
        configuration = k8s_client.Configuration()
        if pool_size is not None:
            configuration.connection_pool_maxsize = pool_size
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        return cls(k8s_client.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()

    # --- transport ---------------------------------------------------------------------------

    @contextmanager
    def writes_under(self, check: Callable[[str], None]) -> Iterator[None]:
        """Call `check` with each write's description right before this thread sends it.

        A reconcile pass is a run of writes (objects, status, Events); a leader paused in the
        middle of it resumes with its Lease gone, and its fence must stop the next write, not
        only the next step. `check` raises to refuse; reads are never checked."""
        outer = getattr(self._writes, "check", None)
        self._writes.check = check
        try:
            yield
        finally:
            self._writes.check = outer

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        headers: dict[str, str] = {"Accept": "application/json", "User-Agent": FIELD_MANAGER}
        if body is not None:
            headers["Content-Type"] = content_type
        queries: list[tuple[str, str]] = list(query)
        self._api.update_params_for_auth(headers, queries, ["BearerToken"], path, method, body)
        url = self._host + path
        if queries:
            url += "?" + urllib.parse.urlencode(queries)
        payload = None if body is None else json.dumps(body).encode()
        what = f"{method} {path}"
        check: Callable[[str], None] | None = getattr(self._writes, "check", None)
        if check is not None and method != "GET":
            check(what)
        try:
            response = self._api.rest_client.pool_manager.request(
                method,
                url,
                body=payload,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
                retries=False,
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as error:
            raise ConnectionFailed(
                f"Kubernetes API {self._host} did not answer {what}: {type(error).__name__}"
            ) from None
        log.debug("%s -> %s", what, response.status)
        data = response.data
        if 200 <= response.status < 300:
            return json.loads(data) if data else None
        raise self._error(response.status, data, what)

    @staticmethod
    def _error(status: int, data: bytes, what: str) -> ClientError:
        try:
            message = str(json.loads(data).get("message", ""))
        except (ValueError, AttributeError):
            message = ""
        text = f"{what}: HTTP {status} {message}".strip()
        if status == 404:
            return NotFound(text)
        if status == 409:
            return Conflict(text)
        if status == 401:
            return AuthenticationFailed(text)
        if status == 403:
            return Refused(text, reason="Forbidden")
        if status in (400, 422):
            return Refused(text, reason="Invalid")
        return ConnectionFailed(text)

    # --- reads -------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            obj: dict[str, Any] = self._request("GET", resource.path(namespace, name))
        except NotFound:
            return None
        return obj

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(SECRETS, namespace, name)

    def list_objects(
        self, resource: Resource, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        result = self._request("GET", resource.path(namespace), query=query)
        items: list[dict[str, Any]] = result.get("items", []) if result else []
        return items

    def list_owned(
        self, resource: Resource, namespace: str, owner_uid: str, label_selector: str
    ) -> list[dict[str, Any]]:
        """Objects of `resource` whose ownerReferences name `owner_uid` (labels pre-filter)."""
        return [
            obj
            for obj in self.list_objects(resource, namespace, label_selector)
            if any(
                ref.get("uid") == owner_uid
                for ref in obj.get("metadata", {}).get("ownerReferences", [])
            )
        ]

    # --- writes ------------------------------------------------------------------------------

    def apply(
        self, resource: Resource, obj: Mapping[str, Any], *, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply of a complete object (create or update), forced unless `force` is
        False: then a field another manager set to another value is a Conflict (409)."""
        meta = obj["metadata"]
        result: dict[str, Any] = self._request(
            "PATCH",
            resource.path(meta["namespace"], meta["name"]),
            query=[("fieldManager", self._field_manager), ("force", "true" if force else "false")],
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return result

    def delete(self, resource: Resource, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete with background propagation; False when it was already gone.

        With `uid`, only that very object: if the name now belongs to an object created since
        it was read, the API server refuses (409) and nothing is deleted.
        """
        options: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            self._request("DELETE", resource.path(namespace, name), body=options)
        except NotFound:
            return False
        except Conflict:
            if uid is None:
                raise
            return False
        return True

    def patch_status(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """JSON merge patch of `.status`; None when the object is gone."""
        try:
            result: dict[str, Any] = self._request(
                "PATCH",
                resource.path(namespace, name, "status"),
                body={"status": patch},
                content_type="application/merge-patch+json",
            )
        except NotFound:
            return None
        return result

    def patch_merge(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """JSON merge patch of the object (with `metadata.resourceVersion` in `patch`: Conflict
        when it changed since); None when the object is gone."""
        try:
            result: dict[str, Any] = self._request(
                "PATCH",
                resource.path(namespace, name),
                body=dict(patch),
                content_type="application/merge-patch+json",
            )
        except NotFound:
            return None
        return result

    def create(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST", resource.path(obj["metadata"]["namespace"]), body=obj
        )
        return result

    def replace(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        """PUT with the object's resourceVersion: Conflict when someone wrote in between."""
        meta = obj["metadata"]
        result: dict[str, Any] = self._request(
            "PUT", resource.path(meta["namespace"], meta["name"]), body=obj
        )
        return result

    def post_event(
        self,
        about: ObjectRef,
        event_type: str,
        reason: str,
        message: str,
        *,
        component: str,
        instance: str,
        now: datetime,
    ) -> None:
        """A core/v1 Event about `about`, as `kubectl describe` lists it."""
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
            "involvedObject": {
                "apiVersion": about.api_version,
                "kind": about.kind,
                "namespace": about.namespace,
                "name": about.name,
                "uid": about.uid,
            },
            "type": event_type,
            "reason": reason,
            "message": fit_message(message),
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": instance,
            "action": reason,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "eventTime": rfc3339(now, "microseconds"),
            "count": 1,
        }
        self._request("POST", EVENTS.path(about.namespace), body=body)
