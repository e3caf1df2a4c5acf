"""The page's in-memory handshake: each failure it offers happens, refused by the
side that should refuse it, at the step it belongs to; both sides' ladders."""

from __future__ import annotations

import pytest
from mtlsdemo.console.tryout import PROVOKE, Tryout, TryoutError, TryRequest

EXPECT = {  # provoke -> (reason, the side that refuses, step)
    "none": ("success", "", ""),
    "foreign-ca": ("unknown_ca", "client", "certificate_verify"),
    "expired": ("certificate_expired", "client", "certificate_verify"),
    "wrong-identity": ("identity_mismatch", "server", "certificate_verify"),
    "wrong-server-name": ("identity_mismatch", "client", "certificate_verify"),
    "no-common-suite": ("no_common_suite", "server", "hello"),
}


@pytest.fixture(scope="module")
def tryout(tmp_path_factory: pytest.TempPathFactory) -> Tryout:
    return Tryout(tmp_path_factory.mktemp("tryout"))


def test_every_failure_offered_is_covered() -> None:
    assert set(EXPECT) == set(PROVOKE)


@pytest.mark.parametrize("provoke", list(EXPECT))
def test_each_failure_happens_where_it_belongs(tryout: Tryout, provoke: str) -> None:
    reason, refuser, step = EXPECT[provoke]
    r = tryout.run(TryRequest(provoke=provoke))
    assert r["outcome"] == reason
    views = {d["role"]: d for d in r["handshakes"]}
    assert set(views) == {"client", "server"}
    if reason == "success":
        assert all(d["outcome"] == "success" and d["messages"] for d in views.values())
        return
    local = views[refuser]
    assert (local["outcome"], local["origin"], local["step"]) == (reason, "local", step)
    other = views["server" if refuser == "client" else "client"]
    assert (other["outcome"], other["origin"], other["step"]) == (reason, "remote_unverified", step)
    assert local["messages"][-1]["step"] == "alert"


def test_rsa_key_transport_runs_and_bad_requests_are_refused(tryout: Tryout) -> None:
    r = tryout.run(TryRequest("rsa-2048", "RSA-OAEP-AES-128-GCM"))
    assert r["outcome"] == "success" and r["handshakes"][0]["suite"] == "RSA-OAEP-AES-128-GCM"
    for bad in (TryRequest(key_type="dsa"), TryRequest(suite="FOO"), TryRequest(provoke="x")):
        with pytest.raises(TryoutError):
            tryout.run(bad)


def test_the_in_memory_handshake_comes_as_a_pcap_with_its_key_log(tryout: Tryout) -> None:
    import base64
    import struct

    ok = tryout.run(TryRequest())["capture"]
    pcap = base64.b64decode(ok["pcap_base64"])
    assert struct.unpack("<I", pcap[:4])[0] == 0xA1B2C3D4  # a classic pcap
    assert ok["keys"].startswith("MTD_CLIENT_TRAFFIC_SECRET_0 ")
    assert ok["open"].endswith(f"-r {ok['pcap_name']} -V")
    refused = tryout.run(TryRequest(provoke="foreign-ca"))["capture"]
    assert refused["keys"] == ""  # no session: nothing to decrypt, the alert is in clear
    assert len(base64.b64decode(refused["pcap_base64"])) > 1000  # the hellos and the alert


def test_the_foreign_ca_is_named_impostor_as_breaks_is(tryout: Tryout) -> None:
    from cryptography import x509

    tryout.run(TryRequest(provoke="foreign-ca"))
    other = x509.load_pem_x509_certificate(
        (tryout.workdir / "other-ecdsa-p256" / "ca" / "ca.crt").read_bytes()
    )
    main = x509.load_pem_x509_certificate(
        (tryout.workdir / "main-ecdsa-p256" / "ca" / "ca.crt").read_bytes()
    )
    assert "impostor root CA" in other.subject.rfc4514_string()
    assert "impostor" not in main.subject.rfc4514_string()
