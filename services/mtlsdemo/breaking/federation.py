"""The `break` scenarios of a `--domains 2` mesh (two trust domains, federated by
bundle): an alias refused where federation decides by domain, a missing bundle, and a
stale copy of the other domain's bundle after its CA rolled over."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from mtlsdemo.breaking.common import Report, report_metrics, snapshot
from mtlsdemo.breaking.scenarios import (
    _authorities,
    _now,
    federated_gateway,
    report_attempt,
)
from mtlsdemo.endpoint.dial import handshake
from mtlsdemo.handshake import HandshakeConfig
from mtlsdemo.mesh.client import LocalMesh, through_route
from mtlsdemo.pki.authorities import Authorities
from mtlsdemo.pki.bootstrap import BootstrapRequest
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.pki.issue import write_identity_dir
from mtlsdemo.pki.material import IdentitySource
from mtlsdemo.pki.stores import FileStore
from mtlsdemo.trust import VerificationFailed
from mtlsdemo.waiting import wait_until


def their_bundle(mesh: LocalMesh) -> tuple[str, str, tuple[x509.Certificate, ...]]:
    """The other trust domain (``run --domains 2``), the bundle endpoint our agent
    fetches it from, and the bundle that endpoint serves now (the SPIFFE format)."""
    from mtlsdemo.agent.bundle import decode, fetch

    ((td, facts),) = mesh.agent()["federated"].items()
    source = str(facts["source"])
    cas, _sequence = decode(fetch(source), source)
    return td, source, cas


def alias(mesh: LocalMesh, r: Report, work: Path) -> None:
    """B's CA issues a certificate for OUR gateway's name and presents it to B's ledger:
    federation verifies an A name against A's bundle only, so B's own CA cannot speak
    for it; an alias (A's root merged into B's bundle, any domain accepted) would."""
    from mtlsdemo.handshake.config import Credentials
    from mtlsdemo.handshake.peer import PeerPolicy
    from mtlsdemo.mesh.supervisor import domain_b_certs
    from mtlsdemo.trust import TrustStore

    c = mesh.config
    ledger = mesh.status(c.ledger_admin)["identity"]
    cas_b = Authorities.read(FileStore(domain_b_certs(c.certs_dir)))
    if cas_b is None:
        r.fail(f"{domain_b_certs(c.certs_dir)}: no CA of the second trust domain")
        return
    ours = ServiceIdentity("gateway", c.namespace, c.trust_domain)
    forged_dir = write_identity_dir(
        work / "gateway-by-b", cas_b.current, ours, bundle_pem=cas_b.bundle_pem, at=_now()
    )
    forged = IdentitySource(forged_dir).current
    r.add(
        "setup",
        f"{cas_b.current.cert.subject.rfc4514_string()} (the ledger's own domain) issues a "
        f"certificate for {ours.spiffe_id}, a name of the other domain",
    )
    # a client that accepts the ledger (B's CA), presenting the forged gateway
    cfg = HandshakeConfig(
        Credentials.from_parts(forged.chain, forged.key),
        TrustStore(forged.cas),
        PeerPolicy((ledger,)),
        require_status="off",
    )
    before = snapshot(mesh)
    attempt = handshake(*c.ledger, cfg, timeout=c.timeout)
    r.add("trigger", f"presented to the ledger's sidecar ({ledger}) as the gateway")
    report_attempt(r, attempt, "the forged gateway", "the ledger's sidecar")
    own = next(
        (
            h
            for h in mesh.status(c.ledger_admin)["recent_handshakes"]
            if h["outcome"] == "unknown_ca"
        ),
        None,
    )
    if own is not None:
        r.add("", f"the ledger's sidecar, in its own words: {own['detail']}")
    report_metrics(r, mesh, before, [("ledger-sidecar", "server", "unknown_ca", "local")])
    merged = TrustStore([ca.cert for ca in (*cas_b.all, *_authorities(mesh).all)])
    try:
        v = merged.verify_certificates(list(forged.chain), "client", _now())
    except VerificationFailed as e:
        r.fail(f"the alias store refused it too ({e.failure.value}): nothing to compare")
        return
    r.add(
        "alias",
        f"side by side: a ledger that merged {c.trust_domain}'s root into its own bundle "
        f"(an alias, any domain accepted) verifies the same certificate as {v.identity}, "
        f"chained to {v.path[-1].subject.rfc4514_string()}: B's CA speaking for A's gateway. "
        "Federation keeps each CA an anchor for its own domain's names only",
    )


def bundle_missing(mesh: LocalMesh, r: Report, work: Path) -> None:
    """The gateway as its agent would serve it with no bundle for the ledger's trust
    domain: it has nothing to verify the ledger with, and says which bundle is missing;
    with the bundle its agent fetches from the other domain's endpoint, it passes."""
    c = mesh.config
    td, source, cas = their_bundle(mesh)
    r.add(
        "setup",
        f"the gateway's identity with no bundle for {td} (its agent fetches one from "
        f"{source}): only {c.trust_domain}'s CA to verify the ledger with",
    )
    before = snapshot(mesh)
    attempt = handshake(*c.ledger, federated_gateway(mesh, {}), timeout=c.timeout)
    r.add("trigger", "the gateway dials the ledger's sidecar")
    report_attempt(r, attempt, "the gateway", "the ledger's sidecar")
    report_metrics(
        r, mesh, before, [("ledger-sidecar", "server", "unknown_ca", "remote_unverified")]
    )
    attempt = handshake(*c.ledger, federated_gateway(mesh, {td: cas}), timeout=c.timeout)
    attempt.close()
    if attempt.error is not None:
        r.fail(f"with {td}'s bundle the gateway still failed: {attempt.error}")
        return
    r.add(
        "heal",
        f"{td}'s bundle as its endpoint serves it ({len(cas)} CA, the SPIFFE JWK set): the "
        f"same gateway verifies the ledger against it, and only it, and the handshake passes",
    )


def stale_bundle(mesh: LocalMesh, r: Report, work: Path) -> None:
    """The ledger's trust domain rolls its CA over (prepare, switch, finish) while the
    mesh runs. The mesh's gateway, whose agent re-fetches the bundle within the
    overlap, keeps every new tunnel; a gateway holding the bundle from before the
    rollover refuses the ledger's new SVID, naming the bundle it checked."""
    from mtlsdemo.mesh.supervisor import domain_b_certs
    from mtlsdemo.pki.authorities import read_stage
    from mtlsdemo.pki.lifecycle import rotate_ca

    c = mesh.config
    td, source, copy = their_bundle(mesh)
    certs_b = domain_b_certs(c.certs_dir)
    store = FileStore(certs_b)
    req = BootstrapRequest(
        out=certs_b, services=("ledger",), trust_domain=td, namespace=c.namespace
    )

    def gateway_holds(n: int, what: str) -> None:
        """Until the mesh's gateway holds ``n`` of the other domain's CAs."""
        wait_until(
            lambda: len(mesh.status(c.gateway_admin)["federated_bundles"].get(td, [])) == n,
            timeout=30,
            what=what,
            interval=0.5,
        )

    r.add("setup", f"a copy of {td}'s bundle kept now ({len(copy)} CA), never refreshed")
    try:
        rotate_ca(req, "prepare", store, _now())
        r.add("rollover", f"{td} prepares a new CA: its bundle holds both, its SVIDs still the old")
        gateway_holds(2, f"the gateway's agent to re-fetch {td}'s bundle")
        r.add("", f"the mesh's gateway holds both (its agent re-fetched {source})")
        serial = mesh.status(c.ledger_admin)["certificate"]["serial"]
        rotate_ca(req, "switch", store, _now())
        new = wait_until(
            lambda: (s := mesh.status(c.ledger_admin)["certificate"]["serial"]) != serial and s,
            timeout=30,
            what="the ledger's sidecar to take an SVID from the new CA",
            interval=0.5,
        )
        r.add("rollover", f"{td} switches: the ledger's SVID re-issued by the new CA ({new})")
        answered = [through_route(c.route, c.timeout) for _ in range(5)]
        if answered.count("the ledger answered") != 5:
            r.fail(f"the refreshed gateway lost tunnels across the switch: {answered}")
        else:
            r.add("refreshed", "the mesh's gateway: 5 new tunnels after the switch, 5 answered")
        before = snapshot(mesh)
        attempt = handshake(*c.ledger, federated_gateway(mesh, {td: copy}), timeout=c.timeout)
        r.add("trigger", "a gateway with the copy from before the rollover dials the ledger")
        report_attempt(r, attempt, "the stale gateway", "the ledger's sidecar")
        report_metrics(
            r, mesh, before, [("ledger-sidecar", "server", "unknown_ca", "remote_unverified")]
        )
        _td, _src, current = their_bundle(mesh)
        attempt = handshake(*c.ledger, federated_gateway(mesh, {td: current}), timeout=c.timeout)
        attempt.close()
        if attempt.error is not None:
            r.fail(f"with {td}'s current bundle the gateway still failed: {attempt.error}")
        else:
            r.add("heal", f"the bundle re-fetched from {source}: the same gateway passes")
    finally:  # the rollover carried to its end, whatever happened: B is never left halfway
        if read_stage(store) == "prepared":
            rotate_ca(req, "switch", store, _now())
        if read_stage(store) == "switched":
            rotate_ca(req, "finish", store, _now())
    gateway_holds(1, f"the gateway's agent to drop {td}'s retired CA")
    r.add("", f"{td} finishes: the old CA retired, and dropped from the gateway's copy too")
