"""The handshake's own crypto code paths against Project Wycheproof vectors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from mtlsdemo.handshake import kx, signatures
from mtlsdemo.handshake.errors import ProtocolError, Reason
from mtlsdemo.handshake.keyschedule import hkdf_expand, hkdf_extract, hmac_sha256
from mtlsdemo.handshake.records import aead_open, aead_seal
from mtlsdemo.handshake.signatures import Scheme

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "wycheproof"


def load(name: str) -> list[tuple[dict, dict]]:
    data = json.loads((VECTORS / name).read_text())
    return [(g, t) for g in data["testGroups"] for t in g["tests"]]


def cases(name: str, keep=lambda g, t: True) -> list:
    return [pytest.param(g, t, id=str(t["tcId"])) for g, t in load(name) if keep(g, t)]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


# Our records use 96-bit nonces and 128-bit tags only; other sizes never reach this code.
def _aead_ok(g: dict, t: dict) -> bool:
    return g["ivSize"] == 96 and g["tagSize"] == 128 and g["keySize"] in (128, 256)


@pytest.mark.parametrize(
    ("cls", "name"),
    [(AESGCM, "aes_gcm_test.json"), (ChaCha20Poly1305, "chacha20_poly1305_test.json")],
)
def test_record_aead(cls: type, name: str) -> None:
    checked = 0
    for g, t in load(name):
        if not _aead_ok(g, t):
            continue
        aead = cls(h(t["key"]))
        sealed = h(t["ct"]) + h(t["tag"])
        if t["result"] == "valid":
            assert aead_seal(aead, h(t["iv"]), h(t["msg"]), h(t["aad"])) == sealed, t["tcId"]
            assert aead_open(aead, h(t["iv"]), sealed, h(t["aad"])) == h(t["msg"]), t["tcId"]
        else:
            with pytest.raises(ProtocolError) as e:
                aead_open(aead, h(t["iv"]), sealed, h(t["aad"]))
            assert e.value.reason is Reason.DECRYPT_ERROR
        checked += 1
    assert checked > 100


def test_x25519_key_exchange() -> None:
    checked = 0
    for _g, t in load("x25519_test.json"):
        priv = x25519.X25519PrivateKey.from_private_bytes(h(t["private"]))
        shared = h(t["shared"])
        if shared == bytes(32) or t["result"] == "invalid":
            # all-zero shared secret (low-order public key): refused, never used as a key
            with pytest.raises(ProtocolError) as e:
                kx.x25519_shared(priv, h(t["public"]))
            assert e.value.reason is Reason.ILLEGAL_PARAMETER
        else:
            assert kx.x25519_shared(priv, h(t["public"])) == shared, t["tcId"]
        checked += 1
    assert checked == 518


def test_x25519_wrong_length_public_key_is_illegal_parameter() -> None:
    priv, _ = kx.x25519_keypair(os.urandom)
    for n in (0, 31, 33, 64):
        with pytest.raises(ProtocolError) as e:
            kx.x25519_shared(priv, b"\x09" * n)
        assert e.value.reason is Reason.ILLEGAL_PARAMETER


def test_hkdf() -> None:
    for _g, t in load("hkdf_sha256_test.json"):
        prk = hkdf_extract(h(t["salt"]), h(t["ikm"]))
        if t["result"] == "valid":
            assert hkdf_expand(prk, h(t["info"]), t["size"]) == h(t["okm"]), t["tcId"]
        else:
            with pytest.raises(ValueError):
                hkdf_expand(prk, h(t["info"]), t["size"])


def test_hmac_sha256() -> None:
    for g, t in load("hmac_sha256_test.json"):
        tag = hmac_sha256(h(t["key"]), h(t["msg"]))[: g["tagSize"] // 8]
        assert (tag == h(t["tag"])) == (t["result"] == "valid"), t["tcId"]


def _verify_outcome(public_key: object, scheme: Scheme, sig: bytes, msg: bytes) -> bool:
    try:
        signatures.verify(public_key, scheme, sig, msg)
    except ProtocolError as e:
        assert e.reason is Reason.BAD_SIGNATURE
        return False
    return True


@pytest.mark.parametrize(
    ("name", "scheme"),
    [
        ("ecdsa_secp256r1_sha256_test.json", Scheme.ECDSA_SECP256R1_SHA256),
        ("ed25519_test.json", Scheme.ED25519),
        ("rsa_pss_2048_sha256_mgf1_32_test.json", Scheme.RSA_PSS_RSAE_SHA256),
    ],
)
def test_certificate_verify_signatures(name: str, scheme: Scheme) -> None:
    checked = 0
    for g, t in load(name):
        key = serialization.load_der_public_key(h(g["publicKeyDer"]))
        ok = _verify_outcome(key, scheme, h(t["sig"]), h(t["msg"]))
        if t["result"] == "valid":
            assert ok, t["tcId"]
        elif t["result"] == "invalid":
            assert not ok, t["tcId"]
        checked += 1
    assert checked > 100


def test_rsa_oaep_key_transport() -> None:
    checked = 0
    for g, t in load("rsa_oaep_2048_sha256_mgf1sha256_test.json"):
        if t["label"]:
            continue  # our key transport uses the empty label only
        key = serialization.load_der_private_key(h(g["privateKeyPkcs8"]), password=None)
        got = kx.oaep_decrypt(key, h(t["ct"]))
        if t["result"] == "valid":
            assert got == h(t["msg"]), t["tcId"]
        else:
            assert got is None, t["tcId"]
        # the handshake-level function never raises, and answers a 48-byte secret either way
        premaster, ok = kx.rsa_oaep_decrypt(key, h(t["ct"]), os.urandom)
        assert len(premaster) == 48
        assert ok == (t["result"] == "valid" and len(h(t["msg"])) == 48)
        checked += 1
    assert checked >= 20
