"""The Kubernetes API's Secret calls in memory, for the Secret sink's unit tests."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException


class FakeCoreV1:
    """The three Secret calls of CoreV1Api, in memory, recording every write, with
    the API server's concurrency rules: create of an existing name is 409
    AlreadyExists, replace with a stale metadata.resourceVersion is 409 Conflict."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], client.V1Secret] = {}
        self.calls: list[tuple[str, str]] = []
        self.version = 0

    def read_namespaced_secret(self, name: str, namespace: str) -> client.V1Secret:
        if (namespace, name) not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        return self.secrets[(namespace, name)]

    def _store(self, namespace: str, body: client.V1Secret) -> None:
        self.version += 1
        body.metadata.resource_version = str(self.version)
        self.secrets[(namespace, body.metadata.name)] = body

    def create_namespaced_secret(self, namespace: str, body: client.V1Secret) -> client.V1Secret:
        if (namespace, body.metadata.name) in self.secrets:
            raise ApiException(status=409, reason="AlreadyExists")
        self.calls.append(("create", body.metadata.name))
        self._store(namespace, body)
        return body  # the API answers with the object as stored, its new resourceVersion

    def replace_namespaced_secret(
        self, name: str, namespace: str, body: client.V1Secret
    ) -> client.V1Secret:
        assert (namespace, name) in self.secrets
        current = self.secrets[(namespace, name)].metadata.resource_version
        if body.metadata.resource_version not in (None, current):
            raise ApiException(status=409, reason="Conflict")
        self.calls.append(("replace", name))
        self._store(namespace, body)
        return body
