"""How a caller without a sidecar picks its transport and names the gateway's
workload, and how a refused MTD/1 handshake of its in-process sidecar is told."""

from __future__ import annotations

from pathlib import Path

import pytest
from mtlsdemo.gateway.caller import explained, peer_id, resolve_transport
from mtlsdemo.handshake import ProtocolError, Reason
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.material import IdentitySource
from mtlsdemo.sidecar.outcome import HandshakeOutcome


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for kt in ("ecdsa-p256", "ml-dsa-44"):
        d = tmp_path_factory.mktemp(kt)
        bootstrap(BootstrapRequest(out=d, services=("cli",), namespace="shop", key_type=kt))
        out[kt] = d / "cli"
    return out


def test_auto_is_mtd_for_an_ml_dsa_identity_and_tls_otherwise(pki: dict[str, Path]) -> None:
    ecdsa, mldsa = (IdentitySource(pki[k]).current for k in ("ecdsa-p256", "ml-dsa-44"))
    assert resolve_transport("auto", ecdsa) == "tls"
    assert resolve_transport("auto", mldsa) == "mtd"  # grpcio's TLS cannot present it
    assert resolve_transport("mtd", ecdsa) == "mtd"  # asked: a mesh behind its sidecar
    assert resolve_transport("tls", mldsa) == "tls"  # asked: refused later, by the server


def test_the_gateway_is_the_workload_of_our_own_trust_domain_and_namespace(
    pki: dict[str, Path],
) -> None:
    m = IdentitySource(pki["ecdsa-p256"]).current
    assert peer_id(m, "gateway") == "spiffe://mtls-demo.local/ns/shop/sa/gateway"


def _failed(reason: Reason, origin: str, detail: str = "d") -> HandshakeOutcome:
    return HandshakeOutcome(
        "client",
        "route 1",
        "spiffe://td/ns/default/sa/cli",
        "unknown",
        "127.0.0.1:50052",
        "none",
        0.01,
        ProtocolError(reason, detail, origin),
    )


def test_a_refusal_is_told_as_who_refused_whom_and_why() -> None:
    ours = explained(_failed(Reason.UNKNOWN_CA, "local", "issuer X is not in the trust store"))
    assert ours.sentence("gateway") == (
        "you refused the gateway: unknown_ca: issuer X is not in the trust store"
    )
    theirs = explained(_failed(Reason.UNKNOWN_CA, "remote_unverified"), Path("certs/cli"))
    said = theirs.sentence("gateway")
    assert said.startswith(
        "the gateway refused your certificate because it does not trust the CA that issued it"
    )
    assert "What to do: use an identity issued by the mesh's CA (certs/cli is not)" in said
    assert "sent before it proved who it is" in said  # an alert in clear is only a claim
    gone = explained(_failed(Reason.UNREACHABLE, "local", "connection refused"))
    assert (
        gone.sentence("gateway") == "cannot reach the gateway: 127.0.0.1:50052: connection refused"
    )
