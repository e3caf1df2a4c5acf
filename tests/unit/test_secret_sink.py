"""The Kubernetes Secret sink without a cluster: the objects it builds, and the
same idempotency decisions as the file sink, against a fake CoreV1Api."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.stores import SecretStore, StoreConflict
from support.fake_k8s import FakeCoreV1


def req(**kw) -> BootstrapRequest:
    from pathlib import Path

    return BootstrapRequest(
        out=Path("/nonexistent"), services=("gateway", "ledger", "cli"), namespace="mtlsdemo", **kw
    )


def decoded(secret: client.V1Secret) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret.data.items()}


def test_secrets_built_like_kubernetes_tls_secrets() -> None:
    api = FakeCoreV1()
    bootstrap(req(), store=SecretStore(api, "mtlsdemo"))
    assert [c for c in api.calls] == [
        ("create", "mtlsdemo-ca"),
        ("create", "mtlsdemo-gateway-tls"),
        ("create", "mtlsdemo-ledger-tls"),
        ("create", "mtlsdemo-cli-tls"),
        ("create", "mtlsdemo-crl"),
    ]
    ca = api.secrets[("mtlsdemo", "mtlsdemo-ca")]
    assert ca.type == "Opaque" and set(ca.data) == {"ca.crt", "ca.key", "issued.json"}
    # the CRL in its own Secret, readable by every pod (the CA's is the bootstrap's only)
    crl = api.secrets[("mtlsdemo", "mtlsdemo-crl")]
    assert crl.type == "Opaque" and set(crl.data) == {"crl.pem"}
    assert b"PRIVATE KEY" not in decoded(crl)["crl.pem"]
    gw = api.secrets[("mtlsdemo", "mtlsdemo-gateway-tls")]
    assert gw.type == "kubernetes.io/tls" and set(gw.data) == {
        "ca.crt",
        "tls.crt",
        "tls.key",
        "tls.ocsp",
    }
    assert gw.metadata.labels["app.kubernetes.io/part-of"] == "mtlsdemo"
    assert gw.metadata.namespace == "mtlsdemo"
    data = decoded(gw)
    assert b"PRIVATE KEY" not in decoded(api.secrets[("mtlsdemo", "mtlsdemo-ledger-tls")])["ca.crt"]
    assert data["ca.crt"] == decoded(ca)["ca.crt"]
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "spiffe://mtls-demo.local/ns/mtlsdemo/sa/gateway" in san.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    assert "gateway.mtlsdemo.svc.cluster.local" in san.get_values_for_type(x509.DNSName)
    # the V1Secret serializes to a valid API object
    assert client.ApiClient().sanitize_for_serialization(gw)["kind"] == "Secret"


def test_second_run_writes_nothing() -> None:
    api = FakeCoreV1()
    bootstrap(req(), store=SecretStore(api, "mtlsdemo"))
    api.calls.clear()
    changes = bootstrap(req(), store=SecretStore(api, "mtlsdemo"))
    assert api.calls == []
    assert [c.action for c in changes] == ["reused", "unchanged", "unchanged", "unchanged"]


def test_renewal_replaces_only_the_leaf_secrets_in_window() -> None:
    api = FakeCoreV1()
    t0 = dt.datetime.now(dt.UTC)
    bootstrap(req(), now=t0, store=SecretStore(api, "mtlsdemo"))
    api.calls.clear()
    changes = bootstrap(req(), now=t0 + dt.timedelta(days=25), store=SecretStore(api, "mtlsdemo"))
    assert sorted(api.calls) == [
        ("replace", "mtlsdemo-ca"),  # issued.json: the new serials are on record
        ("replace", "mtlsdemo-cli-tls"),
        ("replace", "mtlsdemo-crl"),  # due: past half its window
        ("replace", "mtlsdemo-gateway-tls"),
        ("replace", "mtlsdemo-ledger-tls"),
    ]
    assert changes[0].action == "reused"
    assert all("within --renew-before" in c.reason for c in changes[1:])


def test_adding_a_service_creates_only_its_secret() -> None:
    api = FakeCoreV1()
    bootstrap(req(), store=SecretStore(api, "mtlsdemo"))
    api.calls.clear()
    from pathlib import Path

    more = BootstrapRequest(
        out=Path("/x"), services=("gateway", "ledger", "cli", "audit"), namespace="mtlsdemo"
    )
    bootstrap(more, store=SecretStore(api, "mtlsdemo"))
    assert api.calls == [("replace", "mtlsdemo-ca"), ("create", "mtlsdemo-audit-tls")]


def test_corrupt_ca_secret_is_named_and_nothing_written() -> None:
    api = FakeCoreV1()
    bootstrap(req(), store=SecretStore(api, "mtlsdemo"))
    ca = api.secrets[("mtlsdemo", "mtlsdemo-ca")]
    ca.data["ca.key"] = base64.b64encode(b"not a key").decode()
    api.calls.clear()
    with pytest.raises(PkiError, match="secret mtlsdemo/mtlsdemo-ca key ca.key"):
        bootstrap(req(force=True), store=SecretStore(api, "mtlsdemo"))
    assert api.calls == []


def test_api_errors_other_than_404_are_reported() -> None:
    class Forbidden(FakeCoreV1):
        def read_namespaced_secret(self, name: str, namespace: str):
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(PkiError, match="403 Forbidden"):
        bootstrap(req(), store=SecretStore(Forbidden(), "mtlsdemo"))


def test_racing_bootstraps_converge_on_one_ca() -> None:
    """The install Job and the renewal CronJob run at once: the one that writes
    second gets 409 and plans again on top of the first one's CA, never a second CA."""
    api = FakeCoreV1()

    class Racing(FakeCoreV1):
        """Before our first write, another bootstrap finishes completely."""

        def __init__(self) -> None:
            self.raced = False

        def __getattr__(self, name):  # everything else: the shared fake
            return getattr(api, name)

        def create_namespaced_secret(self, namespace: str, body: client.V1Secret) -> None:
            if not self.raced:
                self.raced = True
                bootstrap(req(), store=SecretStore(api, "mtlsdemo"))
            api.create_namespaced_secret(namespace, body)

    first_calls = len(api.calls)
    changes = bootstrap(req(), store=SecretStore(Racing(), "mtlsdemo"))
    assert first_calls == 0 and ("create", "mtlsdemo-ca") in api.calls
    assert [c.action for c in changes if c.subject == "ca"] == ["reused"]
    ca = decoded(api.secrets[("mtlsdemo", "mtlsdemo-ca")])["ca.crt"]
    for svc in ("gateway", "ledger", "cli"):
        assert decoded(api.secrets[("mtlsdemo", f"mtlsdemo-{svc}-tls")])["ca.crt"] == ca


def test_a_replace_over_a_newer_version_is_planned_again() -> None:
    api = FakeCoreV1()
    bootstrap(req(), store=SecretStore(api, "mtlsdemo"))
    store = SecretStore(api, "mtlsdemo")
    store.read("gateway/tls.crt")  # we read version N of the gateway Secret ...
    bootstrap(req(force=True), store=SecretStore(api, "mtlsdemo"))  # ... someone writes N+1 ...
    before = api.secrets[("mtlsdemo", "mtlsdemo-gateway-tls")].metadata.resource_version
    changes = bootstrap(req(force=True), store=store)  # ... our stale plan gets 409, then re-plans
    after = api.secrets[("mtlsdemo", "mtlsdemo-gateway-tls")].metadata.resource_version
    assert int(after) > int(before)
    assert [c.action for c in changes if c.subject == "gateway"] == ["issued"]


def test_endless_conflicts_end_with_one_clear_error() -> None:
    class AlwaysConflict(FakeCoreV1):
        def create_namespaced_secret(self, namespace: str, body: client.V1Secret) -> None:
            raise ApiException(status=409, reason="AlreadyExists")

    with pytest.raises(PkiError, match="another cert-bootstrap running"):
        bootstrap(req(), store=SecretStore(AlwaysConflict(), "mtlsdemo"))


def test_a_second_write_from_the_same_store_carries_the_version_it_got_back() -> None:
    api = FakeCoreV1()
    store = SecretStore(api, "mtlsdemo")
    store.commit([("gateway/tls.crt", b"one", 0o644)])
    store.commit([("gateway/tls.crt", b"two", 0o644)])  # conditional on the create's version
    assert api.calls == [("create", "mtlsdemo-gateway-tls"), ("replace", "mtlsdemo-gateway-tls")]
    # another writer in between: our next write is refused, never a silent overwrite
    SecretStore(api, "mtlsdemo").commit([("gateway/tls.crt", b"theirs", 0o644)])
    with pytest.raises(StoreConflict):
        store.commit([("gateway/tls.crt", b"three", 0o644)])
    assert decoded(api.secrets[("mtlsdemo", "mtlsdemo-gateway-tls")])["tls.crt"] == b"theirs"
