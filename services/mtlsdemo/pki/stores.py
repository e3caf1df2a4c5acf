"""Where the bootstrap keeps its output: a directory, or Kubernetes Secrets.

Both speak in the same relative names ("ca/ca.key", "gateway/tls.crt"), so the
bootstrap's decisions (reuse, renew, re-issue) are the same for both sinks.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import write_atomic, writing
from mtlsdemo.pki.keys import check_key_mode

CA_SECRET = "mtlsdemo-ca"
CRL_SECRET = "mtlsdemo-crl"  # the CRL: readable by every pod, unlike the CA's Secret
LABELS = {"app.kubernetes.io/part-of": "mtlsdemo", "app.kubernetes.io/managed-by": "mtlsdemo-certs"}


class Store(Protocol):
    def read(self, rel: str) -> bytes | None: ...
    def where(self, rel: str) -> str: ...
    def commit(self, writes: Iterable[tuple[str, bytes | None, int]]) -> None: ...
    def forget(self) -> None: ...


class StoreConflict(Exception):
    """Someone else wrote the store between our read and our write (the install
    Job and the renewal CronJob racing): plan again from what is there now."""


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, rel: str) -> bytes | None:
        path = self.root / rel
        if not path.exists():
            return None
        if rel.endswith(".key"):
            check_key_mode(path)
        try:
            return path.read_bytes()
        except OSError as e:
            raise PkiError(f"{path}: cannot read: {e.strerror}") from None

    def where(self, rel: str) -> str:
        return str(self.root / rel)

    def commit(self, writes: Iterable[tuple[str, bytes | None, int]]) -> None:
        """Write (or, for data None, delete) each file, in order, each directory
        locked while it changes: its readers see one version of it."""
        writes = list(writes)
        with writing((self.root / rel).parent for rel, _data, _mode in writes):
            for rel, data, mode in writes:
                if data is None:
                    (self.root / rel).unlink(missing_ok=True)
                else:
                    write_atomic(self.root / rel, data, mode)

    def forget(self) -> None:
        """Nothing cached: every read goes to the files."""


def secret_name(service: str) -> str:
    return CA_SECRET if service == "ca" else f"mtlsdemo-{service}-tls"


def locate(rel: str) -> tuple[str, str]:
    """(Secret name, key) of a relative name."""
    if rel == "ca/crl.pem":
        return CRL_SECRET, "crl.pem"
    service, key = rel.split("/", 1)
    return secret_name(service), key.replace("/", "-")  # Secret keys hold no '/'


class SecretStore:
    """Kubernetes Secrets through the official client: the CA in ``mtlsdemo-ca``
    (Opaque, read only by the bootstrap's ServiceAccount), each service's identity
    in ``mtlsdemo-<service>-tls`` (type kubernetes.io/tls: tls.crt, tls.key, ca.crt).

    ``api`` is a ``kubernetes.client.CoreV1Api`` (or anything with its three
    secret methods), so the logic is testable without a cluster.
    """

    def __init__(self, api: Any, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._cache: dict[str, dict[str, bytes] | None] = {}
        self._versions: dict[str, str] = {}  # resourceVersion read: writes are conditional on it

    @classmethod
    def connect(cls, namespace: str) -> SecretStore:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            try:
                config.load_kube_config()
            except (config.ConfigException, OSError) as e:
                raise PkiError(
                    f"--sink kubernetes: no in-cluster config or kubeconfig ({e})"
                ) from None
        return cls(client.CoreV1Api(), namespace)

    def _secret(self, name: str) -> dict[str, bytes] | None:
        if name not in self._cache:
            from kubernetes.client.exceptions import ApiException

            try:
                obj = self.api.read_namespaced_secret(name, self.namespace)
            except ApiException as e:
                if e.status != 404:
                    raise PkiError(
                        f"secret {self.namespace}/{name}: {e.status} {e.reason}"
                    ) from None
                self._cache[name] = None
            else:
                self._cache[name] = {k: base64.b64decode(v) for k, v in (obj.data or {}).items()}
                self._versions[name] = obj.metadata.resource_version
        return self._cache[name]

    def forget(self) -> None:
        self._cache.clear()
        self._versions.clear()

    def read(self, rel: str) -> bytes | None:
        name, key = locate(rel)
        data = self._secret(name)
        return None if data is None else data.get(key)

    def where(self, rel: str) -> str:
        name, key = locate(rel)
        return f"secret {self.namespace}/{name} key {key}"

    def build(self, name: str, data: dict[str, bytes]) -> Any:
        from kubernetes import client

        tls = name not in (CA_SECRET, CRL_SECRET)
        return client.V1Secret(
            api_version="v1",
            kind="Secret",
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=self.namespace,
                labels=dict(LABELS),
                resource_version=self._versions.get(name),
            ),
            type="kubernetes.io/tls" if tls else "Opaque",
            data={k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
        )

    def commit(self, writes: Iterable[tuple[str, bytes | None, int]]) -> None:
        grouped: dict[str, dict[str, bytes | None]] = defaultdict(dict)
        for rel, data, _mode in writes:
            name, key = locate(rel)
            grouped[name][key] = data  # None: remove the key
        # The CA first: a leaf must never exist without the CA that signed it.
        for name in sorted(grouped, key=lambda n: n != CA_SECRET):
            existing = self._secret(name)
            merged = {
                k: v for k, v in {**(existing or {}), **grouped[name]}.items() if v is not None
            }
            body = self.build(name, merged)
            from kubernetes.client.exceptions import ApiException

            try:
                if existing is None:
                    written = self.api.create_namespaced_secret(self.namespace, body)
                else:
                    # replace is all-or-nothing per Secret: a mounted volume sees the
                    # old or the new identity, never a key from one and a cert from another.
                    # It carries the resourceVersion we read: if another run wrote in
                    # between, the API answers 409 instead of silently overwriting it.
                    written = self.api.replace_namespaced_secret(name, self.namespace, body)
            except ApiException as e:
                if e.status == 409:
                    raise StoreConflict(f"secret {self.namespace}/{name}") from None
                raise PkiError(f"secret {self.namespace}/{name}: {e.status} {e.reason}") from None
            self._cache[name] = merged
            # the version the API gave what we wrote: a second write from this process
            # is conditional on it (dropping it would make that write unconditional)
            version = getattr(getattr(written, "metadata", None), "resource_version", None)
            if version:
                self._versions[name] = version
            else:
                self._versions.pop(name, None)
