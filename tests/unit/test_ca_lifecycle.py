"""The CA's side of the lifecycle: revoke, refresh-status, rotate-ca in stages,
and the expiry guard, on files and on Kubernetes Secrets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from mtlsdemo.cli import main
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.files import load_cert, load_certs
from mtlsdemo.pki.lifecycle import refresh_status, revoke, rotate_ca
from mtlsdemo.pki.stores import FileStore, SecretStore
from mtlsdemo.trust.status import RevocationLists, check_status
from support.fake_k8s import FakeCoreV1

SERVICES = ("gateway", "ledger", "cli")
T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def req(out: Path, **kw) -> BootstrapRequest:
    return BootstrapRequest(out=out, services=SERVICES, **kw)


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def status_of(out: Path, svc: str, now: dt.datetime = T0):
    cert = load_cert(out / svc / "tls.crt")
    issuer = next(c for c in load_certs(out / svc / "ca.crt") if c.subject == cert.issuer)
    return check_status((out / svc / "tls.ocsp").read_bytes(), cert, issuer, now)


def test_bootstrap_writes_a_status_per_identity_and_a_crl(tmp_path: Path) -> None:
    bootstrap(req(tmp_path), T0)
    for svc in SERVICES:
        assert status_of(tmp_path, svc).next_update == T0 + dt.timedelta(hours=1)
    ca = load_cert(tmp_path / "ca" / "ca.crt")
    lists = RevocationLists.parse((tmp_path / "ca" / "crl.pem").read_bytes(), [ca])
    assert lists.revoked_count == 0


def test_revoke_then_bootstrap_reissues_and_refresh_keeps_revoked(tmp_path: Path) -> None:
    bootstrap(req(tmp_path), T0)
    old = load_cert(tmp_path / "ledger" / "tls.crt")
    changes = revoke(FileStore(tmp_path), SERVICES, T0, service="ledger", reason="superseded")
    assert [c.action for c in changes] == ["revoked", "updated"]
    with pytest.raises(Exception, match="was revoked"):
        status_of(tmp_path, "ledger")
    ca = load_cert(tmp_path / "ca" / "ca.crt")
    crl = RevocationLists.parse((tmp_path / "ca" / "crl.pem").read_bytes(), [ca])
    assert crl.lookup(old).reason == "superseded"
    # idempotent: the second revoke changes nothing
    before = snapshot(tmp_path)
    again = revoke(FileStore(tmp_path), SERVICES, T0, service="ledger")
    assert again[0].action == "unchanged" and snapshot(tmp_path) == before
    # refresh keeps saying revoked; bootstrap issues a new key and serial
    refresh_status(FileStore(tmp_path), SERVICES, T0 + dt.timedelta(minutes=40))
    with pytest.raises(Exception, match="was revoked"):
        status_of(tmp_path, "ledger", T0 + dt.timedelta(minutes=40))
    out = bootstrap(req(tmp_path), T0)
    assert out[2].action == "issued" and "revoked (superseded)" in out[2].reason
    new = load_cert(tmp_path / "ledger" / "tls.crt")
    assert new.serial_number != old.serial_number
    assert new.public_key().public_bytes(*_spki()) != old.public_key().public_bytes(*_spki())
    assert status_of(tmp_path, "ledger").serial == new.serial_number


def _spki():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def test_revoke_by_serial_from_the_issuance_log(tmp_path: Path) -> None:
    bootstrap(req(tmp_path), T0)
    serial = f"{load_cert(tmp_path / 'cli' / 'tls.crt').serial_number:x}"
    shown = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2)).upper()
    changes = revoke(FileStore(tmp_path), SERVICES, T0, serial=shown)  # inspect's form works
    assert changes[0].subject == "cli" and changes[0].action == "revoked"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["nosuch"], "no certificate for service 'nosuch'; nothing revoked"),
        (["--serial", "abc123"], "serial abc123 was not issued by this CA"),
        (["--serial", "xyz"], "'xyz' is not a hexadecimal serial number"),
        ([], "name a SERVICE or give --serial HEX"),
    ],
)
def test_revoke_refuses_unknown_targets_in_one_line_and_changes_nothing(
    tmp_path: Path, capsys, argv: list[str], said: str
) -> None:
    bootstrap(req(tmp_path))
    before = snapshot(tmp_path)
    assert main(["certs", "revoke", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_expired_ca_is_never_reused_silently(tmp_path: Path, capsys) -> None:
    bootstrap(req(tmp_path, ca_days=1), T0)
    before = snapshot(tmp_path)
    later = T0 + dt.timedelta(days=25)
    with pytest.raises(PkiError, match=r"the CA expired .* Rotate it: `mtlsdemo certs rotate-ca"):
        bootstrap(req(tmp_path), later)
    assert snapshot(tmp_path) == before
    # within --ca-renew-before (30 d by default) is refused the same way
    with pytest.raises(PkiError, match="expires in 23h55m"):
        bootstrap(req(tmp_path), T0 + dt.timedelta(minutes=5))
    # --rotate-ca: a new CA issues, the old one stays trusted until finish
    changes = bootstrap(req(tmp_path, rotate_ca=True), later)
    assert changes[0].action == "rotated"
    assert all(c.action == "issued" for c in changes[1:])
    ca = load_cert(tmp_path / "ca" / "ca.crt")
    assert ca.not_valid_after_utc > later + dt.timedelta(days=3000)
    assert len(load_certs(tmp_path / "gateway" / "ca.crt")) == 2


def test_leaf_is_clipped_to_its_ca(tmp_path: Path) -> None:
    changes = bootstrap(
        req(tmp_path, ca_days=10, leaf_days=30, ca_renew_before=dt.timedelta(0)), T0
    )
    ca = load_cert(tmp_path / "ca" / "ca.crt")
    leaf = load_cert(tmp_path / "gateway" / "tls.crt")
    assert leaf.not_valid_after_utc == ca.not_valid_after_utc
    assert "(clipped to the CA's notAfter)" in changes[1].reason


def _rollover(store, out: Path) -> list[list[str]]:
    stages = []
    for stage in ("prepare", "switch", "finish"):
        stages.append([str(c) for c in rotate_ca(req(out), stage, store, T0)])
    return stages


def test_rotate_ca_stages_on_files(tmp_path: Path) -> None:
    bootstrap(req(tmp_path), T0)
    old_ca = load_cert(tmp_path / "ca" / "ca.crt")
    old_leaf = load_cert(tmp_path / "gateway" / "tls.crt")
    store = FileStore(tmp_path)
    rotate_ca(req(tmp_path), "prepare", store, T0)
    bundle = load_certs(tmp_path / "gateway" / "ca.crt")
    assert len(bundle) == 2 and bundle[0] == old_ca
    assert load_cert(tmp_path / "gateway" / "tls.crt") == old_leaf  # leaves untouched
    rotate_ca(req(tmp_path), "switch", store, T0)
    new_ca = load_cert(tmp_path / "ca" / "ca.crt")
    assert new_ca != old_ca and new_ca == bundle[1]
    for svc in SERVICES:
        leaf = load_cert(tmp_path / svc / "tls.crt")
        leaf.verify_directly_issued_by(new_ca)
        assert status_of(tmp_path, svc).signer  # re-signed by the new CA
    assert len(load_certs(tmp_path / "gateway" / "ca.crt")) == 2
    rotate_ca(req(tmp_path), "finish", store, T0)
    assert load_certs(tmp_path / "gateway" / "ca.crt") == [new_ca]
    assert not (tmp_path / "ca" / "previous.key").exists()
    assert load_cert(tmp_path / "ca" / "retired" / f"{old_ca.serial_number:x}.crt") == old_ca
    assert not (tmp_path / "ca" / "rollover.json").exists()


@pytest.mark.parametrize(
    ("done", "stage", "said"),
    [
        ((), "switch", "no rollover in progress: `prepare` comes first"),
        (("prepare",), "finish", "`switch` comes first"),
        (("prepare", "switch"), "prepare", "`finish` comes first"),
    ],
)
def test_rotate_ca_out_of_order_refuses_in_one_line(
    tmp_path: Path, capsys, done: tuple[str, ...], stage: str, said: str
) -> None:
    bootstrap(req(tmp_path))
    for s in done:
        assert main(["certs", "rotate-ca", s, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert main(["certs", "rotate-ca", stage, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_rotate_ca_stages_are_idempotent(tmp_path: Path) -> None:
    bootstrap(req(tmp_path), T0)
    store = FileStore(tmp_path)
    rotate_ca(req(tmp_path), "prepare", store, T0)
    before = snapshot(tmp_path)
    assert rotate_ca(req(tmp_path), "prepare", store, T0)[0].action == "unchanged"
    assert snapshot(tmp_path) == before


def test_rotate_ca_and_revoke_on_kubernetes_secrets() -> None:
    api = FakeCoreV1()
    out = Path("/unused")
    bootstrap(
        BootstrapRequest(out=out, services=SERVICES, namespace="mtlsdemo"),
        T0,
        SecretStore(api, "mtlsdemo"),
    )

    def secret(name: str) -> dict[str, bytes]:
        import base64

        return {k: base64.b64decode(v) for k, v in api.secrets[("mtlsdemo", name)].data.items()}

    r = BootstrapRequest(out=out, services=SERVICES, namespace="mtlsdemo")
    for stage in ("prepare", "switch", "finish"):
        rotate_ca(r, stage, SecretStore(api, "mtlsdemo"), T0)
    ca_secret = secret("mtlsdemo-ca")
    assert not {"next.key", "previous.key", "rollover.json"} & set(ca_secret)
    assert any(k.startswith("retired-") for k in ca_secret)
    gw = secret("mtlsdemo-gateway-tls")
    assert gw["ca.crt"] == ca_secret["ca.crt"]
    x509.load_pem_x509_certificate(gw["tls.crt"]).verify_directly_issued_by(
        x509.load_pem_x509_certificate(ca_secret["ca.crt"])
    )
    revoke(SecretStore(api, "mtlsdemo"), SERVICES, T0, service="gateway")
    crl = secret("mtlsdemo-crl")["crl.pem"]
    lists = RevocationLists.parse(crl, [x509.load_pem_x509_certificate(ca_secret["ca.crt"])])
    assert lists.lookup(x509.load_pem_x509_certificate(gw["tls.crt"])) is not None


def test_certs_inspect_shows_the_stapled_status_as_a_sidecar_would(tmp_path: Path) -> None:
    from mtlsdemo.pki.inspect import describe

    bootstrap(req(tmp_path), T0)
    crt, ca = tmp_path / "ledger" / "tls.crt", tmp_path / "ca" / "ca.crt"
    assert "stapled status (tls.ocsp): OK (good until" in describe(crt, ca, T0)
    revoke(FileStore(tmp_path), SERVICES, T0, service="ledger")
    assert "stapled status (tls.ocsp): FAILED: certificate_revoked" in describe(crt, ca, T0)
    later = T0 + dt.timedelta(hours=2)
    assert "FAILED: status_stale" in describe(tmp_path / "gateway" / "tls.crt", ca, later)


# ------------------------------------------------------------- key types kept
def _leaf_types(out: Path) -> dict[str, str]:
    from mtlsdemo.pki.keys import key_type_of

    return {s: key_type_of(load_cert(out / s / "tls.crt").public_key()) for s in SERVICES}


def _ca_type(out: Path) -> str:
    from mtlsdemo.pki.keys import key_type_of

    return key_type_of(load_cert(out / "ca" / "ca.crt").public_key())


def test_bootstrap_without_key_type_never_re_keys_to_another_algorithm(tmp_path: Path) -> None:
    bootstrap(req(tmp_path, key_type="ml-dsa-44"), T0)
    before = snapshot(tmp_path)
    changes = bootstrap(req(tmp_path), T0)  # a renewal cron, `certs bootstrap` after a revoke
    assert {c.action for c in changes} == {"reused", "unchanged"}
    assert snapshot(tmp_path) == before
    assert _leaf_types(tmp_path) == dict.fromkeys(SERVICES, "ml-dsa-44")
    # a leaf made new under an ML-DSA CA is ML-DSA too, not the classic default
    (tmp_path / "cli" / "tls.crt").unlink()
    (tmp_path / "cli" / "tls.key").unlink()
    bootstrap(req(tmp_path), T0)
    assert _leaf_types(tmp_path)["cli"] == "ml-dsa-65"


def test_rollover_from_an_ecdsa_ca_to_an_ml_dsa_ca_re_keys_the_leaves_at_switch(
    tmp_path: Path,
) -> None:
    bootstrap(req(tmp_path), T0)
    store = FileStore(tmp_path)
    first = snapshot(tmp_path)
    rotate_ca(req(tmp_path, key_type="ml-dsa-65"), "prepare", store, T0)
    # prepare only adds trust: the leaves are the same files, the bundle has both CAs
    assert all(first[f"{s}/tls.key"] == (tmp_path / s / "tls.key").read_bytes() for s in SERVICES)
    assert len(load_certs(tmp_path / "gateway" / "ca.crt")) == 2
    rotate_ca(req(tmp_path), "switch", store, T0)  # no flag: the leaves follow the new CA
    assert _ca_type(tmp_path) == "ml-dsa-65"
    assert _leaf_types(tmp_path) == dict.fromkeys(SERVICES, "ml-dsa-65")
    rotate_ca(req(tmp_path), "finish", store, T0)
    assert _leaf_types(tmp_path) == dict.fromkeys(SERVICES, "ml-dsa-65")
    # the next rollover without flags keeps the algorithm
    rotate_ca(req(tmp_path), "prepare", store, T0)
    from mtlsdemo.pki.keys import key_type_of

    assert key_type_of(load_cert(tmp_path / "ca" / "next.crt").public_key()) == "ml-dsa-65"
