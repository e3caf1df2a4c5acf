"""The scenarios of `mtlsdemo break`. Each sets itself up, triggers the failure on
the sidecar path (and, where it applies, the native gRPC path), reports who
refused whom with which reason and alert and what each side counted, then undoes
what it changed and proves the mesh healthy again.

What a scenario changes in the certs directory is undone by the bootstrap's own
idempotent commands (`certs bootstrap`, `certs refresh-status`): `break --restore`
runs the same, so an interrupted scenario never leaves the mesh broken.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509

from mtlsdemo.breaking import authz
from mtlsdemo.breaking.catalog import BY_NAME, SCENARIOS
from mtlsdemo.breaking.common import Report, report_metrics, snapshot, through_the_mesh
from mtlsdemo.breaking.relay import Relay, flip_first_data_record, strip_suites
from mtlsdemo.endpoint.dial import Attempt, handshake
from mtlsdemo.endpoint.identity import identity_config
from mtlsdemo.endpoint.memory import handshake_in_memory
from mtlsdemo.handshake import HandshakeConfig, ProtocolError, Reason
from mtlsdemo.handshake.errors import ALERT_CODES, REASON_BY_CODE
from mtlsdemo.handshake.suites import CLASSIC_SUITES, HYBRID_SUITES
from mtlsdemo.mesh.client import LocalMesh, through_route
from mtlsdemo.pki.authorities import Authorities
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.ca import create_root_ca
from mtlsdemo.pki.durations import human
from mtlsdemo.pki.files import write_atomic
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import write_identity_dir
from mtlsdemo.pki.lifecycle import refresh_status, revoke
from mtlsdemo.pki.revocation import build_status
from mtlsdemo.pki.stores import FileStore
from mtlsdemo.trust import SpiffeId
from mtlsdemo.waiting import WaitTimeout, wait_until

SERVICES = ("ledger", "gateway", "cli")


# ------------------------------------------------------------------ helpers
def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _authorities(mesh: LocalMesh) -> Authorities:
    cas = Authorities.read(FileStore(mesh.config.certs_dir))
    if cas is None:
        from mtlsdemo.pki.errors import PkiError

        raise PkiError(f"{mesh.config.certs_dir}/ca: no CA; is `make run` using this certs dir?")
    return cas


def crafted(
    mesh: LocalMesh,
    work: Path,
    service: str,
    *,
    at: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
    days: float = 30,
    foreign: bool = False,
    key_type: str = "ecdsa-p256",
) -> Path:
    """An identity directory made for the scenario, in a temp dir (never in certs):
    issued by the mesh's CA (or a foreign one), trusting the mesh's bundle, with
    its CA's good status to staple."""
    cas = _authorities(mesh)
    ca = (
        create_root_ca("ecdsa-p256", 30, mesh.config.trust_domain, _now(), "impostor root CA")
        if foreign
        else cas.current
    )
    ident = ServiceIdentity(service, mesh.config.namespace, mesh.config.trust_domain)
    return write_identity_dir(
        work / f"{service}-{'foreign' if foreign else 'crafted'}-{key_type}",
        ca,
        ident,
        bundle_pem=cas.bundle_pem,
        at=at or _now(),
        days=days,
        not_before=not_before,
        key_type=key_type,
        status_at=_now(),
    )


def client_config(directory: Path, expect: str, require_status: str = "hard") -> HandshakeConfig:
    return identity_config(directory, peer_ids=(expect,), require_status=require_status)


def gateway_to_ledger(mesh: LocalMesh) -> HandshakeConfig:
    """The gateway's identity files dialing the ledger's sidecar as the mesh runs it: the
    ledger's own SPIFFE ID, and with two trust domains (`run --domains 2`) its domain's
    bundle beside ours, as the gateway's agent would push it (federation)."""
    from mtlsdemo.mesh.supervisor import domain_b_certs

    c = mesh.config
    ledger = str(mesh.status(c.ledger_admin)["identity"])
    td = SpiffeId.parse(ledger).trust_domain
    if td == c.trust_domain:
        return federated_gateway(mesh, {}, ledger)
    theirs = Authorities.read(FileStore(domain_b_certs(c.certs_dir)))
    return federated_gateway(
        mesh, {td: tuple(ca.cert for ca in theirs.all)} if theirs is not None else {}, ledger
    )


def federated_gateway(
    mesh: LocalMesh,
    federated: dict[str, tuple[x509.Certificate, ...]],
    ledger: str | None = None,
) -> HandshakeConfig:
    """The gateway's identity files dialing the ledger's sidecar (``ledger``: its SPIFFE
    ID, read from its /status when not given), verifying each trust domain other than
    ours against ``federated`` only (none: no bundle for it)."""
    from mtlsdemo.trust import TrustStore

    c = mesh.config
    ledger = ledger or str(mesh.status(c.ledger_admin)["identity"])
    cfg = client_config(c.certs_dir / "gateway", ledger, status_checks(mesh))
    trust = TrustStore(cfg.trust.cas, trust_domain=c.trust_domain, federated=federated)
    return dataclasses.replace(cfg, trust=trust)


def status_checks(mesh: LocalMesh) -> str:
    """The status checks a peer of this mesh's sidecars can make: none on SVIDs from a
    Workload API (they staple nothing), the hard ones on identity files."""
    return "off" if mesh.on_workload_api() else "hard"


# scenarios that change the sidecars' identity files: a mesh on the Workload API
# reads none, and the one that needs its agent
FILES_ONLY = {
    "revoked": "it revokes the gateway's identity files, which a mesh on the Workload "
    "API does not read (its SVIDs are short-lived instead: try ca-down)",
    "stale-status": "it ages the gateway's stapled status, and SVIDs from the Workload API "
    "staple none",
}
FEDERATION = {"alias", "bundle-missing", "stale-bundle"}  # the `--domains 2` ones
WATCHABLE = 300.0  # seconds: longer-lived SVIDs would keep `ca-down` waiting for hours


def not_here(mesh: LocalMesh, name: str) -> str | None:
    """Why a scenario does not apply to this mesh, or None."""
    on_api = mesh.on_workload_api()
    if on_api and name in FILES_ONLY:
        return FILES_ONLY[name]
    federated = bool(mesh.status(mesh.config.ledger_admin).get("federated_bundles"))
    if name in FEDERATION and not federated:
        return (
            "it needs two trust domains, federated; start the mesh with "
            "`make run ARGS='--domains 2'`"
        )
    if federated and name not in FEDERATION:
        return (
            "it crafts identities of one trust domain, and this mesh's ledger is in another "
            "(`--domains 2`): here try `break alias` (or bundle-missing, stale-bundle)"
        )
    if name in authz.AUTHZ:
        return authz.not_here(mesh, name)
    if name == "ca-down":
        if not on_api:
            return (
                "it stops the Workload API agent's CA, and this mesh reads identity files; "
                "start it with `make run ARGS='--workload-api --svid-ttl 2m'`"
            )
        ttl = float(mesh.agent()["ttl_seconds"])
        if ttl > WATCHABLE:
            return (
                f"its SVIDs live {human(dt.timedelta(seconds=ttl))}: the mesh would keep working "
                f"up to {human(dt.timedelta(seconds=ttl / 2))} before the first failure; start "
                "it with `--svid-ttl 2m` to watch that here"
            )
    return None


def _alert(reason: Reason) -> str:
    code = ALERT_CODES.get(reason)
    return f"alert {code} ({reason.value})" if code is not None else "no alert (local only)"


def _side(role: str) -> str:
    return {"client": "the client", "server": "the server"}[role]


def report_attempt(r: Report, attempt: Attempt, me: str, them: str) -> ProtocolError | None:
    e = attempt.error
    attempt.close()
    if e is None:
        r.fail(f"the handshake succeeded: {me} and {them} agreed")
        return None
    if e.origin == "local":
        r.add("result", f"{me} refused {them}: {e.reason.value} — {e.detail}")
        r.add("", f"{me} sent {_alert(e.reason)}; {them} was told")
    else:
        r.add(
            "result",
            f"{them} refused {me}: {e.reason.value} ({_alert(e.reason)}, received by {me})",
        )
        if e.origin == "remote_unverified":
            r.add(
                "",
                f"{me} got that alert in clear, before the session keys: on its own it is only "
                f"{them}'s claim (anyone on the path could send it); {them}'s metrics below, "
                'counted origin="local", are its own word',
            )
    return e


def native(r: Report, mesh: LocalMesh, what: str, identity: Path | None = None, **kw: str) -> None:
    """The same failure on the callers' path: a call to the gateway (native gRPC
    mTLS, or MTD/1 into the gateway's sidecar on a mesh run with it)."""
    label = "native" if mesh.caller_transport() == "tls" else "gateway"
    said = mesh.call_gateway(identity, **kw)
    if said is None:
        r.fail(f"{label}: {what}: the gateway answered (expected a refusal)")
    else:
        r.add(label, f"{what}: {said}")


def prove_healthy(r: Report, mesh: LocalMesh) -> None:
    def fine() -> bool:
        return mesh.call_gateway() is None

    try:
        wait_until(fine, timeout=60, what="a call through the gateway to succeed", interval=0.5)
    except WaitTimeout as e:
        r.fail(f"the mesh did not come back: {e}")
        return
    attempt = handshake(*mesh.config.ledger, gateway_to_ledger(mesh), timeout=mesh.config.timeout)
    attempt.close()
    if attempt.error is not None:
        r.fail(f"the ledger sidecar still refuses the gateway: {attempt.error}")
        return
    r.add(
        "healthy",
        "a call through gateway -> ledger answered; a fresh handshake with the ledger sidecar succeeded",
    )


def restore(mesh: LocalMesh) -> list[str]:
    """Undo whatever a scenario changed in the certs dir: re-issue what is revoked
    or missing, re-sign every status. Idempotent: `break --restore`."""
    c = mesh.config
    back = _ca_key_back(c.certs_dir)
    req = BootstrapRequest(
        out=c.certs_dir, services=SERVICES, trust_domain=c.trust_domain, namespace=c.namespace
    )
    changed = [str(x) for x in bootstrap(req) if x.action not in ("reused", "unchanged")]
    refresh_status(FileStore(c.certs_dir), SERVICES, _now())
    return [*back, *changed, *_policy_back(mesh)]


def _policy_back(mesh: LocalMesh) -> list[str]:
    """An `authz-*` scenario's policy left in `run`'s policy file: emptied."""
    from mtlsdemo.mesh import scenario_policy

    try:
        path = authz.policy_file(mesh)
    except OSError:  # the ledger's sidecar is down: nothing to ask it
        return []
    if path is None or path.read_text() == scenario_policy.EMPTY:
        return []
    scenario_policy.reset(path)
    return [f"{path}: the scenario's policy removed"]


CA_KEY_DOWN = "ca.key.down"  # where `ca-down` puts the CA's key while the CA is "down"


def _ca_key_back(certs: Path) -> list[str]:
    key, down = certs / "ca" / "ca.key", certs / "ca" / CA_KEY_DOWN
    if down.exists() and not key.exists():
        down.rename(key)
        return ["the CA's key back in ca/ca.key"]
    return []


def _gateway_takes(mesh: LocalMesh, change: Callable[[], object], what: str) -> None:
    """Change the gateway's identity files, then wait until its sidecar reloaded
    them (the generation is read first: the sidecar may reload before we look)."""
    admin = mesh.config.gateway_admin

    def generation() -> int:
        return int(mesh.status(admin)["certificate"]["reload_generation"])

    before = generation()
    change()
    wait_until(
        lambda: generation() > before, timeout=90, what=what, interval=0.3, ignore=(OSError,)
    )


# ------------------------------------------------------------------ scenarios
def _impostor(mesh: LocalMesh, r: Report, work: Path, ident: Path, who: str, expect: str) -> None:
    before = snapshot(mesh)
    r.add(
        "trigger",
        f"{who} connects to the ledger's sidecar at {mesh.config.ledger[0]}:{mesh.config.ledger[1]}",
    )
    attempt = handshake(
        *mesh.config.ledger,
        client_config(ident, mesh.config.id("ledger"), status_checks(mesh)),
        timeout=mesh.config.timeout,
    )
    e = report_attempt(r, attempt, who, "the ledger's sidecar")
    if e is not None and e.reason.value != expect:
        r.fail(f"expected {expect}, got {e.reason.value}")
    report_metrics(r, mesh, before, [("ledger-sidecar", "server", expect, "local")])
    said = [
        h["detail"]
        for h in mesh.status(mesh.config.ledger_admin)["recent_handshakes"]
        if h["outcome"] == expect and h["origin"] == "local"
    ]
    if said:
        r.add("why", f"the ledger's sidecar says: {said[0]}")


def foreign_ca(mesh: LocalMesh, r: Report, work: Path) -> None:
    ident = crafted(mesh, work, "gateway", foreign=True)
    r.add(
        "setup",
        f"a 'gateway' certificate from another CA (it trusts ours; we do not trust it): {ident}",
    )
    _impostor(mesh, r, work, ident, "the impostor", "unknown_ca")
    native(r, mesh, "a cli certificate from that CA", crafted(mesh, work, "cli", foreign=True))


def expired(mesh: LocalMesh, r: Report, work: Path) -> None:
    ident = crafted(mesh, work, "gateway", at=_now() - dt.timedelta(days=40), days=30)
    r.add("setup", "a gateway certificate from our CA that expired 10 days ago")
    _impostor(mesh, r, work, ident, "the old gateway", "certificate_expired")
    native(
        r,
        mesh,
        "an expired cli certificate",
        crafted(mesh, work, "cli", at=_now() - dt.timedelta(days=40), days=30),
    )


def not_yet_valid(mesh: LocalMesh, r: Report, work: Path) -> None:
    start = _now() + dt.timedelta(days=1)
    ident = crafted(mesh, work, "gateway", at=start, not_before=start)
    r.add("setup", "a gateway certificate from our CA valid only from tomorrow")
    _impostor(mesh, r, work, ident, "the early gateway", "certificate_not_yet_valid")


def wrong_identity(mesh: LocalMesh, r: Report, work: Path) -> None:
    ident = crafted(mesh, work, "intruder")
    r.add(
        "setup",
        f"a valid certificate from our CA for {mesh.config.id('intruder')}, "
        "not on the ledger's allow-list",
    )
    _impostor(mesh, r, work, ident, "the intruder", "identity_mismatch")
    native(
        r,
        mesh,
        "the ledger's own certificate calling the gateway",
        mesh.config.certs_dir / "ledger",
    )


def wrong_server_name(mesh: LocalMesh, r: Report, work: Path) -> None:
    r.add(
        "setup",
        f"the gateway's identity, expecting the ledger's sidecar to be {mesh.config.id('cli')}",
    )
    before = snapshot(mesh)
    attempt = handshake(
        *mesh.config.ledger,
        client_config(
            mesh.config.certs_dir / "gateway", mesh.config.id("cli"), status_checks(mesh)
        ),
        timeout=mesh.config.timeout,
    )
    report_attempt(r, attempt, "the gateway", "the ledger's sidecar")
    report_metrics(
        r, mesh, before, [("ledger-sidecar", "server", "identity_mismatch", "remote_unverified")]
    )
    native(r, mesh, "calling the gateway expecting the name 'ledger'", server_name="ledger")


def no_common_suite(mesh: LocalMesh, r: Report, work: Path) -> None:
    """A migration gone wrong (issue 26): a gateway that insists on quantum-safe key
    exchange meets a ledger not yet upgraded. The mesh's sidecars offer both, so the
    two are played in memory, with the mesh's own identities and suites cut as each
    would be configured (`--suites`); nothing in the running mesh changes."""
    c = mesh.config
    r.add("setup", "in memory, with the mesh's own identities (the running mesh is untouched):")
    r.add("", "the gateway offers only the hybrid X25519MLKEM768 suites (quantum-safe only);")
    r.add("", "the ledger enables only the classic X25519 suites (not upgraded yet)")
    client = dataclasses.replace(
        client_config(c.certs_dir / "gateway", c.id("ledger"), status_checks(mesh)),
        suites=HYBRID_SUITES,
    )
    server = dataclasses.replace(
        client_config(c.certs_dir / "ledger", c.id("gateway"), status_checks(mesh)),
        suites=CLASSIC_SUITES,
    )
    cconn, _s, e = handshake_in_memory(client, server, _now())
    if e is None:
        r.fail("the handshake succeeded: a common suite was found")
        return
    r.add("result", f"the ledger refused the gateway: {e.reason.value} — {e.detail}")
    seen = cconn.error
    if seen is not None:
        r.add(
            "",
            f"the gateway got {_alert(seen.reason)} in clear ({seen.origin}), at the hello: "
            "no certificate was sent, no key derived",
        )
    r.add(
        "fix",
        "offer both while migrating — the default offer is the hybrid suites first, then "
        "X25519 — and drop the classic suites only once every peer speaks the hybrid "
        '(watch mtls_handshakes_total{suite=~"X25519MLKEM768.*"} reach every edge)',
    )


def clock_skew(mesh: LocalMesh, r: Report, work: Path) -> None:
    skew = dt.timedelta(days=40)
    r.add("setup", "a client whose clock runs 40 days ahead (each side judges by its own clock)")
    before = snapshot(mesh)
    attempt = handshake(
        *mesh.config.ledger,
        client_config(
            mesh.config.certs_dir / "gateway", mesh.config.id("ledger"), status_checks(mesh)
        ),
        now=_now() + skew,
        timeout=mesh.config.timeout,
    )
    report_attempt(r, attempt, "the skewed gateway", "the ledger's sidecar")
    report_metrics(
        r, mesh, before, [("ledger-sidecar", "server", "certificate_expired", "remote_unverified")]
    )


def slow_handshake(mesh: LocalMesh, r: Report, work: Path) -> None:
    import socket

    r.add("setup", "a client that connects and never says hello")
    before = snapshot(mesh)
    with socket.create_connection(mesh.config.ledger, timeout=60) as s:
        r.add("trigger", "waiting for the ledger sidecar's --handshake-timeout")
        ended = s.recv(100)
    said = "closed the connection"
    if len(ended) >= 7 and ended[0] == 21:  # a plaintext alert record: level, code
        code = ended[6]
        said = f"sent alert {code} ({REASON_BY_CODE.get(code, '?')}) and closed"
    r.add("result", f"the ledger's sidecar gave up on the silent client: it {said}")
    report_metrics(r, mesh, before, [("ledger-sidecar", "server", "handshake_timeout", "local")])


def _through(mesh: LocalMesh, r: Report, transform: object, what: str, expect: str) -> None:
    relay = Relay(mesh.config.ledger, transform)  # type: ignore[arg-type]
    r.add("setup", f"a man in the middle at 127.0.0.1:{relay.port}: {what}")
    before = snapshot(mesh)
    try:
        attempt = handshake(
            "127.0.0.1",
            relay.port,
            client_config(
                mesh.config.certs_dir / "gateway", mesh.config.id("ledger"), status_checks(mesh)
            ),
            timeout=mesh.config.timeout,
        )
        if attempt.error is None:  # the handshake survived: tampering shows in the first record
            attempt.conn.send_data(b"GET /balance/alice")
            attempt.sock.sendall(attempt.conn.data_to_send())
            # the app behind the sidecar may speak first (gRPC's SETTINGS): read on
            # until the sidecar's verdict on our tampered record arrives
            try:
                while True:
                    attempt.conn.receive_data(attempt.sock.recv(65536))
            except ProtocolError as e:
                attempt.error = e
            except OSError as e:
                attempt.error = ProtocolError(Reason.TRUNCATED, str(e), origin="remote_unverified")
        report_attempt(r, attempt, "the gateway", "the ledger's sidecar")
    finally:
        relay.close()
    if expect == "tamper":
        for what in getattr(transform, "changed", []):
            r.add("", f"the man in the middle changed {what}")
        r.add(
            "",
            "the ledger's sidecar recomputed the tag over the header and the ciphertext with "
            "its session key and it did not match: the record failed authentication "
            "(decrypt_error) and nothing of it reached the ledger. On the wire (a mesh run with "
            "--keylog, `mtlsdemo capture --seconds 20` running meanwhile): the MTD/1 dissector "
            "marks this record `AEAD tag verified: False`",
        )
        report_records(r, mesh)
    elif expect == "downgrade":
        # MTD/1.2 signs the whole transcript: the ledger's sidecar signed the hello it
        # received, so the gateway's check of that signature fails (step 2), before any
        # key is derived; MTD/1.1 caught it only at the Finished (step 4)
        r.add(
            "",
            "the ledger's sidecar signed the ClientHello it received (MTD/1.2 signs the whole "
            "transcript), not the one the gateway sent: the cut offer shows as a bad "
            "signature at step 2, before any key exists",
        )
        report_metrics(
            r, mesh, before, [("ledger-sidecar", "server", "bad_signature", "remote_unverified")]
        )
    else:
        report_metrics(r, mesh, before, [("ledger-sidecar", "server", expect, "local")])


def report_records(r: Report, mesh: LocalMesh) -> None:
    def count() -> float:
        found = mesh.samples(mesh.config.ledger_admin, "mtls_record_failures_total")
        return float(sum(s.value for s in found if s.labels.get("reason") == "decrypt_error"))

    try:
        wait_until(lambda: count() >= 1, timeout=15, what="the record failure to be counted")
        r.add(
            "metrics",
            f'ledger-sidecar: mtls_record_failures_total{{reason="decrypt_error"}} = {count():g}',
        )
    except WaitTimeout:
        r.fail("no decrypt_error counted by the ledger's sidecar")


def tamper(mesh: LocalMesh, r: Report, work: Path) -> None:
    _through(
        mesh, r, flip_first_data_record(), "flips one bit of the first encrypted record", "tamper"
    )


def downgrade(mesh: LocalMesh, r: Report, work: Path) -> None:
    _through(
        mesh,
        r,
        strip_suites(1),
        "cuts the ClientHello's suite list to its last suite (the hybrid X25519MLKEM768 ones go: "
        "a recording would again be open to a future quantum computer)",
        "downgrade",
    )


@contextmanager
def _changed(mesh: LocalMesh, r: Report) -> Iterator[None]:
    try:
        yield
    finally:
        changed = restore(mesh)
        r.add("restore", "; ".join(changed) or "statuses re-signed")


def revoked(mesh: LocalMesh, r: Report, work: Path) -> None:
    c = mesh.config
    with _changed(mesh, r):
        changes: list[Any] = []

        def revoke_gateway() -> None:
            changes.extend(
                revoke(
                    FileStore(c.certs_dir), SERVICES, _now(), service="gateway",
                    reason="key_compromise",
                )
            )  # fmt: skip

        _gateway_takes(mesh, revoke_gateway, "the gateway's sidecar to reload its revoked status")
        r.add("setup", f"certs revoke gateway: {changes[0]}")
        through_the_mesh(mesh, r, "certificate_revoked")
        if mesh.caller_transport() == "tls" and not mesh.gateway_checks_crl():
            # said, not failed: this mesh's gateway is not set up to see revocations
            r.add(
                "native",
                "not tried: the gateway checks its callers against no CRL on this mesh "
                "(compose keeps the CRL in the CA's volume, which the gateway does not "
                "mount); a native caller's revoked certificate is refused only where a "
                "CRL is checked (`make run` and Kubernetes give the gateway --crl)",
            )
        else:
            native(
                r,
                mesh,
                "a revoked cli certificate calling the gateway",
                _revoked_cli(mesh, work),
            )


def _revoked_cli(mesh: LocalMesh, work: Path) -> Path:
    """A copy of the certs dir's cli identity, revoked in the real CA state (the
    gateway's CRL is the certs dir's); restore re-issues the real one."""
    copy = work / "cli-revoked"
    shutil.copytree(mesh.config.certs_dir / "cli", copy)
    revoke(FileStore(mesh.config.certs_dir), SERVICES, _now(), service="cli")
    return copy


def stale_status(mesh: LocalMesh, r: Report, work: Path) -> None:
    c = mesh.config
    with _changed(mesh, r):
        cas = _authorities(mesh)
        m = mesh.identity("gateway")
        old = build_status(cas.current, m.leaf, [], _now() - dt.timedelta(hours=3))
        _gateway_takes(
            mesh,
            lambda: write_atomic(c.certs_dir / "gateway" / "tls.ocsp", old),
            "the gateway's sidecar to reload its stale status",
        )
        r.add(
            "setup",
            "the gateway's stapled status replaced by one that expired 2 h ago "
            "(as if refresh-status had stopped)",
        )
        through_the_mesh(mesh, r, "status_stale")


def ca_down(mesh: LocalMesh, r: Report, work: Path) -> None:
    c = mesh.config
    key = c.certs_dir / "ca" / "ca.key"
    agent = mesh.agent()["workloads"]
    failures = {w: s["failures"] for w, s in agent.items()}
    key.rename(key.with_name(CA_KEY_DOWN))
    try:
        r.add(
            "setup",
            f"the CA's key taken away (ca/ca.key -> ca/{CA_KEY_DOWN}): the agent can issue "
            "no SVID now, as if the CA were down",
        )

        def failed() -> str | None:
            now = mesh.agent()["workloads"]
            return next((w for w, s in now.items() if s["failures"] > failures[w]), None)

        wait_until(failed, timeout=WATCHABLE, what="the agent's next renewal to fail", interval=0.5)
        now = mesh.agent()["workloads"]
        w = failed()
        assert w is not None
        r.add(
            "agent",
            f"renewing {w}'s SVID failed: {now[w]['last_error']}; the SVID in hand keeps "
            "serving and the agent retries",
        )
        first = min(now, key=lambda n: now[n]["not_after"])
        left = now[first]["not_after"] - time.time()
        r.add(
            "budget",
            f"the mesh keeps working for {max(left, 0):.0f}s more: {first}'s SVID expires "
            "first (the other's: "
            + ", ".join(
                f"{n} {s['not_after'] - time.time():.0f}s" for n, s in now.items() if n != first
            )
            + ")",
        )
        said = mesh.call_gateway()
        if said is None:
            r.add("meanwhile", "a call through the gateway answered: the SVIDs in hand serve")
        else:
            r.fail(f"a call failed before any SVID expired: {said}")
        wait_until(
            lambda: time.time() > now[first]["not_after"] + 1,
            timeout=left + 15,
            what=f"{first}'s SVID to expire",
            interval=0.5,
        )
        _first_failure(mesh, r)
    finally:
        _ca_key_back(c.certs_dir)
    r.add("heal", "the CA's key back: the agent's next retry issues new SVIDs to both")
    admins = {"gateway": c.gateway_admin, "ledger": c.ledger_admin}

    def taken() -> bool:  # issued again, and each sidecar serves its new SVID
        now = mesh.agent()["workloads"]
        return all(
            now[w]["remaining_seconds"] > 0
            and mesh.status(a)["certificate"]["serial"] == now[w]["serial"]
            for w, a in admins.items()
        )

    wait_until(taken, timeout=60, what="new SVIDs issued and taken", interval=0.5)


def _first_failure(mesh: LocalMesh, r: Report) -> None:
    """A new tunnel between the sidecars after an SVID expired: whoever checks the
    expired certificate first refuses it (the client checks the server's first)."""
    admins = {
        "ledger-sidecar": mesh.config.ledger_admin,
        "gateway-sidecar": mesh.config.gateway_admin,
    }
    seen = {  # each sidecar numbers its own handshakes
        (name, h["id"]) for name, a in admins.items() for h in mesh.status(a)["recent_handshakes"]
    }
    before = snapshot(mesh)
    said = through_route(mesh.config.route, mesh.config.timeout)
    r.add("trigger", "a new connection into the gateway sidecar's route (a new handshake)")
    r.add("result", said)

    def refused() -> tuple[str, dict[str, Any]] | None:
        for name, admin in admins.items():
            for h in mesh.status(admin)["recent_handshakes"]:
                new = (name, h["id"]) not in seen
                if new and h["outcome"] == "certificate_expired" and h["origin"] == "local":
                    return name, h
        return None

    try:
        found = wait_until(refused, timeout=mesh.config.timeout + 5, what="a sidecar to refuse")
    except WaitTimeout:
        r.fail("no sidecar refused an expired SVID")
        return
    assert found is not None  # wait_until returns only a truthy answer
    name, h = found
    r.add("", f"{name} refused its peer: certificate_expired — {h['detail']}")
    role = "server" if name == "ledger-sidecar" else "client"
    report_metrics(r, mesh, before, [(name, role, "certificate_expired", "local")])


def run_scenario(mesh: LocalMesh, name: str) -> Report:
    r = Report(name)
    r.add("what", SCENARIOS[name])
    why = not_here(mesh, name)
    if why is not None:
        r.skipped = True
        r.add("skipped", f"not on this mesh: {why}")
        return r
    with tempfile.TemporaryDirectory(prefix=f"mtlsdemo-break-{name}-") as tmp:
        try:
            BY_NAME[name].runner()(mesh, r, Path(tmp))
        except WaitTimeout as e:  # a step that never came: say which, then heal anyway
            r.fail(str(e))
    prove_healthy(r, mesh)
    return r
