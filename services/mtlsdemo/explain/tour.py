"""`mtlsdemo tour`: the classic four-step explanation of TLS, walked through on
the running local mesh, then the classic openssl self-signed example run for real.

Each section: a plain paragraph, the live command and the relevant part of its
real output, and "what really happens" where the usual explanation is wrong or
simplified; then where to watch the same thing over time. `--markdown` writes
the same as a document (docs/tls-walkthrough.md is generated from it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlsdemo.breaking.scenarios import client_config, crafted, status_checks
from mtlsdemo.endpoint.dial import handshake
from mtlsdemo.endpoint.identity import identity_config
from mtlsdemo.endpoint.memory import handshake_in_memory
from mtlsdemo.handshake import Connection, DataReceived, ProtocolError
from mtlsdemo.handshake.records import HEADER_LEN, TAG_LEN, ContentType, split_view
from mtlsdemo.handshake.suites import BY_NAME
from mtlsdemo.mesh.client import LocalMesh
from mtlsdemo.pki.errors import PkiError


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)  # plain explanation
    command: str = ""
    output: list[str] = field(default_factory=list)  # the real output, trimmed
    really: list[str] = field(default_factory=list)  # what the usual explanation gets wrong
    watch: str = ""  # the metric / panel showing it over time
    facts: dict[str, str] = field(default_factory=dict)  # for tests and --json


def _sha(data: bytes) -> str:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize().hex()


def _trace_fields(conn: Connection, name: str, direction: str | None = None) -> dict[str, Any]:
    for e in conn.trace:
        if e.name == name and (direction is None or e.direction == direction):
            return dict(e.fields)
    return {}


# ------------------------------------------------------------------ sections
def hello(mesh: LocalMesh) -> tuple[Section, Connection]:
    c = mesh.config
    cfg = client_config(c.certs_dir / "gateway", c.id("ledger"), status_checks(mesh))
    cfg = dataclasses.replace(cfg, trace=True)
    attempt = handshake(*c.ledger, cfg, timeout=c.timeout)
    attempt.close()
    if attempt.error is not None:
        raise PkiError(f"tour: the ledger's sidecar refused the gateway: {attempt.error}")
    conn = attempt.conn
    ch, sh = _trace_fields(conn, "CLIENT_HELLO", "send"), _trace_fields(conn, "SERVER_HELLO")
    s = Section("1. Hello: agree on how to talk")
    s.text = [
        "The client opens a TCP connection and says hello: the protocol versions it speaks, "
        "a 32-byte random number, and the cipher suites it can use, best first. A cipher "
        "suite names a key exchange (how the two sides get a shared secret) and a cipher "
        "(how data is then encrypted).",
        "The server answers with its own random number and the one version and suite it "
        "picked from the client's list.",
    ]
    s.command = f"mtlsdemo handshake --connect {c.ledger[0]}:{c.ledger[1]}   (as the gateway)"
    s.output = [
        f"client offers: versions {', '.join(ch['versions'])}; suites {', '.join(ch['suites'])}",
        f"server picks:  {sh['version']}, {sh['suite']}",
        f"randoms:       client {ch['random'][:16]}…, server {sh['random'][:16]}…",
    ]
    s.really = [
        "The hello is not where the server proves anything: everything here is in the clear "
        "and could be forged. It only fixes the rules; steps 2 to 4 check them (both "
        "CertificateVerify signatures of step 2 and the Finished MACs of step 4 cover this "
        "hello, so a man in the middle who strips suites is caught: try "
        "`mtlsdemo break downgrade`).",
    ]
    s.watch = 'metric mtls_handshakes_total{suite=…}; dashboard panel "Suites in use"'
    s.facts = {"suite": sh["suite"], "version": sh["version"]}
    return s, conn


def certificate_verification(mesh: LocalMesh, conn: Connection) -> Section:
    c = mesh.config
    peer = conn.peer
    assert peer is not None  # hello() returns only a completed handshake
    leaf: x509.Certificate = peer.leaf
    ca: x509.Certificate = peer.chain[-1]
    algo = leaf.signature_hash_algorithm
    ca_key = ca.public_key()
    spki = ca_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        leaf.verify_directly_issued_by(ca)
        verdict = "valid: the CA's key made this signature"
    except Exception as e:  # shown, not raised: this is the lesson
        verdict = f"INVALID ({e})"
    s = Section("2. Certificate verification: who are you, and who says so?")
    s.text = [
        "The server sends its certificate: its public key and its name, signed by a "
        "certificate authority (CA). It also asks for the client's certificate: this is "
        "mutual TLS, both sides prove who they are.",
        "Each side checks the other's certificate against the CA certificate it already "
        "holds (its trust store, `ca.crt`): the CA's signature, the validity dates, the name "
        "(here a SPIFFE ID), and a status the CA signed recently. Then each side signs the "
        "handshake so far with its private key (CertificateVerify): a certificate is public, "
        "only that signature proves the peer holds the matching key.",
    ]
    s.command = "(the same handshake: the client's view of the ledger's certificate)"
    s.output = [
        f"certificate:   {leaf.subject.rfc4514_string()}, serial {leaf.serial_number:x}",
        f"issued by:     {ca.subject.rfc4514_string()}",
        f"hash of the signed part (SHA-256 of tbsCertificate): {_sha(leaf.tbs_certificate_bytes)[:32]}…",
        f"signature ({algo.name if algo else '?'}): {leaf.signature.hex()[:32]}… "
        f"({len(leaf.signature)} bytes)",
        f"CA public key from the local trust store {c.certs_dir / 'gateway' / 'ca.crt'}: "
        f"SHA-256 {_sha(spki)[:32]}…",
        f"verify(signature, hash, CA public key): {verdict}",
        *[f"✓ {check}" for check in peer.checks if "stapled status" in check or "SPIFFE" in check],
        f"✓ valid {leaf.not_valid_before_utc:%Y-%m-%d} .. {leaf.not_valid_after_utc:%Y-%m-%d}",
    ]
    s.really = [
        'The client does not send the certificate to the CA, and the CA does not "approve" '
        "it during the handshake: nobody is contacted. The client checks the CA's signature "
        "itself, with the CA's public key it already has. A signature is not encryption: the "
        'CA\'s private key did not "encrypt" anything; it made a value that anyone with the '
        "public key can check and nobody without the private key can make.",
        'The CA\'s *current* opinion ("this certificate is not revoked") does exist, but it '
        "arrives inside the handshake, stapled by the server and signed by the CA an hour "
        "ago at most — checked locally like the certificate (`mtlsdemo break revoked`).",
    ]
    s.watch = (
        'metric mtls_handshakes_total{reason="unknown_ca"|"certificate_expired"|…}; '
        'mtls_certificate_expiry_timestamp_seconds; dashboard panel "Certificate expiry countdown"'
    )
    s.facts = {"peer": peer.identity, "signature": verdict}
    return s


def _in_memory(
    client_dir: Path, server_dir: Path, suite: str, expect: str
) -> tuple[Connection, Connection]:
    suites = (BY_NAME[suite],)
    ccfg = identity_config(client_dir, suites, peer_ids=(expect,), trace=True)
    scfg = identity_config(server_dir, suites, trace=True)
    c, s, error = handshake_in_memory(ccfg, scfg, dt.datetime.now(dt.UTC))
    if error is not None:
        raise error
    return c, s


def key_exchange(mesh: LocalMesh, work: Path, conn: Connection) -> Section:
    c = mesh.config
    rsa_client = crafted(mesh, work, "gateway", key_type="rsa-2048")
    rsa_server = crafted(mesh, work, "ledger", key_type="rsa-2048")
    cl, sv = _in_memory(rsa_client, rsa_server, "RSA-OAEP-AES-256-GCM", c.id("ledger"))
    cke = _trace_fields(cl, "CLIENT_KEY_EXCHANGE", "send")
    got = _trace_fields(sv, "CLIENT_KEY_EXCHANGE", "recv")
    keys = _trace_fields(cl, "KEY_SCHEDULE")
    skeys = _trace_fields(sv, "KEY_SCHEDULE")
    x_keys = _trace_fields(conn, "KEY_SCHEDULE")
    # the post-quantum part, measured: the mesh's identities, hybrid and classic
    # (the step's time: the median of 15 handshakes each, interleaved, not one sample)
    pq = {}
    times: dict[str, list[float]] = {
        "X25519MLKEM768-AES-256-GCM": [],
        "ECDHE-X25519-AES-256-GCM": [],
    }
    configs = {  # the identity files read once, not once per handshake
        name: (
            identity_config(c.certs_dir / "gateway", (BY_NAME[name],), peer_ids=(c.id("ledger"),)),
            identity_config(c.certs_dir / "ledger", (BY_NAME[name],)),
        )
        for name in times
    }
    for _ in range(15):
        for name, samples in times.items():
            pc, _ps, error = handshake_in_memory(*configs[name], dt.datetime.now(dt.UTC))
            if error is not None:
                raise error
            assert pc.result is not None
            samples.append(pc.result.phases["key_exchange"])
            sizes = {
                st.name: st.size
                for st in pc.ladder
                if st.name.endswith(("KEY_SHARE", "KEY_EXCHANGE"))
            }
            pq[name] = (sizes, sum(step.size for step in pc.ladder), statistics.median(samples))
    hy, cl_ = pq["X25519MLKEM768-AES-256-GCM"], pq["ECDHE-X25519-AES-256-GCM"]
    s = Section("3. Key exchange: a secret only these two can compute")
    s.text = [
        "First exactly the classic explanation, RSA key transport: the client makes a random "
        "48-byte pre-master secret, encrypts it with the public key from the server's "
        "certificate, and sends it; only the server's private key can decrypt it.",
        "Then what the mesh really uses, ephemeral Diffie-Hellman (ECDHE, X25519): each side "
        "makes a fresh key pair for this connection only and sends the public half; each "
        "combines its private half with the other's public half and both get the same "
        "secret, which never crosses the wire — on this mesh, by default, together with a "
        "post-quantum key encapsulation (ML-KEM-768), below.",
    ]
    s.command = (
        "mtlsdemo handshake --suites RSA-OAEP-AES-256-GCM   (in memory, with two RSA "
        "identities the mesh's CA issued for the tour)"
    )
    s.output = [
        f"RSA-OAEP: ClientKeyExchange carries {cke.get('data_len')} bytes: {cke.get('carries')}",
        f"          the server decrypted it: {got.get('decrypted', '?')}",
        "          both sides' key schedules agree: "
        + ("yes" if keys.get("fingerprints") == skeys.get("fingerprints") else "NO"),
        f"{conn.result.suite if conn.result else 'the mesh'} (the handshake of step 1): "
        "key schedule fingerprints "
        + ", ".join(f"{k.split(' =')[0]} {v}" for k, v in list(x_keys["fingerprints"].items())[:2]),
        "labels: master = HKDF-Extract(client_random || server_random, shared); "
        'traffic keys = HKDF-Expand-Label(master, "c ap traffic" / "s ap traffic", transcript hash)',
        f"post-quantum, measured now (client side, in memory): hybrid ServerKeyShare "
        f"{hy[0]['SERVER_KEY_SHARE']} B + ClientKeyExchange {hy[0]['CLIENT_KEY_EXCHANGE']} B "
        f"vs X25519's {cl_[0]['SERVER_KEY_SHARE']} B + {cl_[0]['CLIENT_KEY_EXCHANGE']} B; "
        f"whole handshake {hy[1]} B vs {cl_[1]} B; key-exchange step "
        f"{hy[2] * 1e3:.2f} ms vs {cl_[2] * 1e3:.2f} ms (medians of 15)",
    ]
    s.really = [
        "The pre-master secret is not the session key: both sides feed it (or the ECDHE "
        "output), both randoms and the transcript into HKDF and derive separate keys for "
        "each direction. And RSA key transport gives up forward secrecy: whoever records "
        "the traffic and later steals the server's private key decrypts the pre-master and "
        "everything after it. Worse, live: the holder of that key decrypts a new session's "
        "pre-master as it passes and can then write records the server accepts as the "
        "client's — the client's signature proves it started the session, not that the "
        "bytes are its own. With ECDHE the key pairs are thrown away after the handshake "
        "and the certificate key only signs, so a stolen certificate key opens nothing "
        "recorded before and takes over no session (it lets its holder pose as the server "
        "to new clients, until the certificate is revoked).",
        "And the step the field is changing now: X25519 falls to a large enough quantum "
        "computer, so a session recorded today could be opened later ('harvest now, decrypt "
        "later'). The mesh's default suite, X25519MLKEM768, adds ML-KEM-768 (FIPS 203): the "
        "server sends a fresh ML-KEM key beside its X25519 key, the client answers with a "
        "ciphertext only that key opens, and the session secret needs both. ML-KEM guards "
        "against the quantum computer, X25519 against a classical flaw in the younger ML-KEM; "
        "the price is the bytes and milliseconds above. Certificates can go post-quantum too "
        "(`certs bootstrap --key-type ml-dsa-65`, ML-DSA signatures of 3.3 KB).",
    ]
    s.watch = 'dashboard panel "Handshake time per step" (key_exchange); mtls_handshake_phase_duration_seconds'
    s.facts = {"rsa_kx": cke.get("carries", ""), "rsa_decrypted": got.get("decrypted", "")}
    return s


def data(mesh: LocalMesh, work: Path) -> Section:
    c = mesh.config
    cl, sv = _in_memory(
        c.certs_dir / "gateway", c.certs_dir / "ledger", "ECDHE-X25519-AES-256-GCM", c.id("ledger")
    )
    message = b"transfer 12.50 alice->bob"
    cl.send_data(message)
    wire = cl.data_to_send()
    got = b"".join(e.data for e in sv.receive_data(wire) if isinstance(e, DataReceived))
    cl.send_data(message)
    wire2 = cl.data_to_send()
    tampered = wire2[:-1] + bytes((wire2[-1] ^ 0x01,))
    try:
        sv.receive_data(tampered)
        outcome = "accepted (!)"
        reason = "none"
    except ProtocolError as e:
        outcome, reason = f"refused: {e.reason.value} — {e.detail}", e.reason.value
    s = Section("4. Data: encrypted under the session keys")
    s.text = [
        "Both sides send Finished, a MAC over the whole handshake under the new keys: if "
        "anything was changed in flight, the MACs differ and the connection ends. From then "
        "on, data travels in records sealed with AES-256-GCM, an authenticated cipher "
        "(AEAD: it encrypts, and adds a tag that detects any changed byte).",
    ]
    s.command = "(in memory: the gateway sends a record to the ledger)"
    s.output = [
        f"plaintext:            {message.decode()}",
        f"on the wire ({len(wire)} B): header {wire[:HEADER_LEN].hex()} | "
        f"ciphertext+tag {wire[HEADER_LEN:].hex()[:48]}…",
        "an eavesdropper sees: the record type and length, random-looking bytes",
        f"the ledger decrypts:  {got.decode()}",
        f"one bit flipped:      {outcome}",
    ]
    wire_lines = same_call_on_two_hops(mesh, work)
    s.output += wire_lines or [
        "(this machine cannot capture on lo here: `mtlsdemo capture` shows the same call at "
        "both hops where dumpcap or tcpdump may capture)"
    ]
    s.facts["wire"] = "captured" if wire_lines else "not captured"
    s.really = [
        '"Encrypted" is not enough: without the authentication tag, a flipped bit would '
        "silently change the amount. AEAD ciphers check every record; a failure ends the "
        "connection (`mtlsdemo break tamper` does it between two real sidecars).",
    ]
    s.watch = 'mtls_record_bytes_total; mtls_record_failures_total; panel "Record failures"'
    s.facts = {"decrypted": got.decode(), "tampered": reason}
    return s


def same_call_on_two_hops(mesh: LocalMesh, work: Path) -> list[str]:
    """One call through the gateway, captured for real (dumpcap or tcpdump on lo): the
    bytes it takes between the gateway and its own sidecar (in clear) beside the bytes
    of the same call between the two sidecars (one record: ciphertext and tag). Empty
    when this machine cannot capture."""
    import grpc

    from mtlsdemo._generated.gateway.v1 import gateway_pb2 as pb
    from mtlsdemo._generated.gateway.v1 import gateway_pb2_grpc as pb_grpc
    from mtlsdemo.gateway.client import gateway_channel
    from mtlsdemo.wire.capture import Recorder, hops
    from mtlsdemo.wire.errors import CaptureError
    from mtlsdemo.wire.pcapread import segments

    c = mesh.config
    try:
        found, _keylogs = hops(mesh)
        plain_port = next(h.port for h in found if h.name == "gateway-app")
        mtd_port = next(h.port for h in found if h.name == "mesh")
        path = work / "tour.pcapng"
        recorder = Recorder("lo", f"tcp port {plain_port} or tcp port {mtd_port}", path)
    except (CaptureError, StopIteration):
        return []
    name = b"alice"
    try:
        channel = gateway_channel(
            f"{c.gateway[0]}:{c.gateway[1]}", c.certs_dir / "cli", "gateway", c.transport
        )
        with contextlib.suppress(grpc.RpcError):  # NOT_FOUND still crossed both hops
            pb_grpc.GatewayServiceStub(channel).GetBalance(
                pb.GetBalanceRequest(account_id=name.decode()), timeout=c.timeout
            )
        channel.close()
    finally:
        recorder.stop()
    segs = segments(path)
    plain = next((x for x in segs if x.dst_port == plain_port and name in x.payload), None)
    if plain is None:
        return []
    later = segs[segs.index(plain) :]

    def opened_size(payload: bytes) -> int:  # plaintext bytes the records carry
        try:
            whole = split_view(payload)[0]
        except ProtocolError:  # a segment that starts inside a record
            return -1
        return sum(len(p) - TAG_LEN for t, _h, p in whole if t == ContentType.APPLICATION_DATA)

    sealed = next(
        (
            x
            for x in later
            if x.dst_port == mtd_port and opened_size(x.payload) == len(plain.payload)
        ),
        None,
    )
    if sealed is None:
        return []
    at = plain.payload.index(name)
    return [
        f'a real capture (dumpcap on lo) of one call, GetBalance("{name.decode()}"), at two hops:',
        f"  gateway -> its own sidecar, port {plain_port}: {len(plain.payload)} bytes in clear "
        f'(gRPC over HTTP/2); "{name.decode()}" at byte {at}: '
        f"…{plain.payload[max(0, at - 8) : at + len(name)].hex()}",
        f"  sidecar == MTD/1 ==> sidecar, port {mtd_port}: {len(sealed.payload)} bytes "
        f"(the same {len(plain.payload)} + a 5-byte header + a 16-byte tag): "
        f"{sealed.payload[:HEADER_LEN].hex()} | {sealed.payload[HEADER_LEN:][:24].hex()}…; "
        f'"{name.decode()}" appears {"nowhere" if name not in sealed.payload else "in it (!)"}',
    ]


def openssl_example(mesh: LocalMesh, work: Path, openssl: str) -> Section:
    c = mesh.config

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=work, check=True, capture_output=True, timeout=60)

    run("genrsa", "-out", "server.key", "2048")
    run("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=gateway")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-signkey",
        "server.key",
        "-out",
        "server.crt",
        "-days",
        "365",
    )
    selfsigned = work / "self-signed"
    selfsigned.mkdir()
    for f, name in (("server.crt", "tls.crt"), ("server.key", "tls.key")):
        shutil.copy(work / f, selfsigned / name)
    (selfsigned / "tls.key").chmod(0o600)
    shutil.copy(c.certs_dir / "gateway" / "ca.crt", selfsigned / "ca.crt")
    refused = handshake(
        *c.ledger, client_config(selfsigned, c.id("ledger"), status_checks(mesh)), timeout=c.timeout
    )
    refused.close()
    first = refused.error
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtlsdemo",
            "certs",
            "sign",
            "server.csr",
            "--ca-dir",
            str(c.certs_dir.resolve() / "ca"),
            "--service",
            "gateway",
            "--out",
            "signed.crt",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0:
        raise PkiError(f"tour: certs sign failed: {r.stderr.strip()}")
    signed = work / "ca-signed"
    signed.mkdir()
    shutil.copy(work / "signed.crt", signed / "tls.crt")
    shutil.copy(work / "signed.ocsp", signed / "tls.ocsp")
    shutil.copy(work / "server.key", signed / "tls.key")
    (signed / "tls.key").chmod(0o600)
    shutil.copy(c.certs_dir / "gateway" / "ca.crt", signed / "ca.crt")
    accepted = handshake(
        *c.ledger, client_config(signed, c.id("ledger"), status_checks(mesh)), timeout=c.timeout
    )
    accepted.close()
    second = accepted.error
    s = Section("5. The classic openssl example, for real")
    s.text = [
        "The three openssl commands everyone learns make a key, a certificate signing "
        "request (CSR) and a certificate signed by that same key — self-signed. Presented to "
        "the mesh, it is refused: nobody's trust store holds its issuer. Signed by the "
        "mesh's CA instead (same key, same CSR), it is accepted.",
    ]
    s.command = (
        "openssl genrsa -out server.key 2048; openssl req -new -key server.key -out server.csr "
        "-subj /CN=gateway; openssl x509 -req -in server.csr -signkey server.key -out "
        "server.crt -days 365; then mtlsdemo certs sign server.csr --ca-dir certs/ca "
        "--service gateway"
    )
    who = "the ledger's sidecar" if first is not None and first.from_peer else "?"
    s.output = [
        "self-signed server.crt presented to the ledger's sidecar: "
        + (f"refused by {who}: {first.reason.value}" if first else "ACCEPTED (!)"),
        "the same CSR signed by the mesh's CA: "
        + ("accepted: the handshake completed" if second is None else f"refused: {second}"),
    ]
    s.really = [
        'Self-signed does not mean "less encrypted": the keys and ciphers are the same. It '
        "means nobody vouches for the name: a self-signed certificate for any name can be "
        "made by anyone, so a verifier accepts it only if it was put in its trust store by "
        "hand. A CA-signed one is accepted by everyone who trusts that CA.",
    ]
    s.watch = 'mtls_handshakes_total{reason="unknown_ca",origin="local"} on the ledger sidecar'
    s.facts = {
        "self_signed": first.reason.value if first else "accepted",
        "self_signed_refused_by": who,
        "ca_signed": "accepted" if second is None else second.reason.value,
    }
    return s


SECTIONS: list[str] = ["hello", "certificate verification", "key exchange", "data", "openssl"]


def run_tour(mesh: LocalMesh, openssl: str | None) -> list[Section]:
    with tempfile.TemporaryDirectory(prefix="mtlsdemo-tour-") as tmp:
        work = Path(tmp)
        first, conn = hello(mesh)
        out = [first, certificate_verification(mesh, conn), key_exchange(mesh, work, conn)]
        out.append(data(mesh, work))
        if openssl is not None:
            out.append(openssl_example(mesh, work, openssl))
        else:
            out.append(Section("5. The classic openssl example", ["(skipped: no `openssl` here)"]))
    return out


def render(sections: list[Section], markdown: bool, pause: Callable[[], object] | None) -> str:
    lines: list[str] = []
    if markdown:
        lines += [
            "# TLS, the four steps, on the running mesh",
            "",
            "Generated by `mtlsdemo tour --non-interactive --markdown` against `make run` "
            f"({dt.datetime.now(dt.UTC):%Y-%m-%d}); regenerate with `make walkthrough`. "
            "Every output below is real.",
            "",
        ]
    for s in sections:
        if markdown:
            lines += [f"## {s.title}", "", *[f"{t}\n" for t in s.text]]
            if s.command:
                lines += ["```", f"$ {s.command}", *s.output, "```", ""]
            for r in s.really:
                lines += [f"**What really happens.** {r}", ""]
            if s.watch:
                lines += [f"*Watch it over time:* {s.watch}", ""]
        else:
            lines += [f"== {s.title}", *[f"   {t}" for t in s.text]]
            if s.command:
                lines += [f"   $ {s.command}", *[f"     {o}" for o in s.output]]
            lines += [f"   what really happens: {r}" for r in s.really]
            if s.watch:
                lines.append(f"   watch it over time: {s.watch}")
            lines.append("")
        if pause is not None and s is not sections[-1]:  # no "next step" after the last
            print("\n".join(lines), flush=True)
            lines = []
            pause()
    if not markdown:
        lines.append(
            "== end of the tour. Next: `mtlsdemo break --list` (break each step on purpose), "
            "`mtlsdemo capture` (the same steps on the wire, in Wireshark), "
            "`mtlsdemo illustrate --seed 1 --out illustrated` (every byte of one handshake, "
            "labelled, each key recomputable), `mtlsdemo authz matrix` (who may call what)"
        )
    return "\n".join(lines)


def openssl_binary() -> str | None:
    return shutil.which("openssl")
