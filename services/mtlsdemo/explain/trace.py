"""``mtlsdemo handshake --trace``: one handshake, message by message, in the
vocabulary of the four steps, then a few encrypted records.

In-process between two in-memory peers by default; with ``--connect HOST:PORT``
against a running sidecar's inbound port (then only our side is seen).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlsdemo.endpoint import dial
from mtlsdemo.endpoint.identity import identity_config
from mtlsdemo.endpoint.memory import handshake_in_memory
from mtlsdemo.handshake import (
    SUITES,
    Connection,
    DataReceived,
    HandshakeConfig,
    ProtocolError,
    Suite,
)
from mtlsdemo.handshake.records import HEADER_LEN
from mtlsdemo.handshake.tickets import TicketCache, TicketKeys
from mtlsdemo.handshake.trace import TraceEntry
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.material import IdentitySource

STEPS = {
    "hello": "1 hello",
    "certificate_verify": "2 certs",
    "key_exchange": "3 key exch",
    "finished": "4 finished → encrypted data",
    "alert": "alert",
    "data": "4 data",
}
NAMES = {
    "CLIENT_HELLO": "ClientHello",
    "SERVER_HELLO": "ServerHello",
    "CERTIFICATE": "Certificate",
    "SERVER_KEY_SHARE": "ServerKeyShare",
    "CERTIFICATE_REQUEST": "CertificateRequest",
    "CERTIFICATE_VERIFY": "CertificateVerify",
    "CLIENT_KEY_EXCHANGE": "ClientKeyExchange",
    "FINISHED": "Finished",
}
DEMO_MESSAGES = [b"GET /balance/alice", b"alice: 112.50", b"close"]  # a request, its answer
WIDTH = 100  # columns: longer lines wrap, indented under their start
SHORT_HEX = 16  # hex digits shown of a ciphertext or frame without --hex (8 bytes)
TERMS = "docs/protocol.md#terms"


def _ensure_certs(certs: Path) -> Path:
    if (certs / "gateway" / "tls.crt").exists() and (certs / "ledger" / "tls.crt").exists():
        return certs
    from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap

    tmp = Path(tempfile.mkdtemp(prefix="mtlsdemo-trace-"))
    bootstrap(BootstrapRequest(out=tmp, services=("gateway", "ledger")))
    return tmp


def _field_text(e: TraceEntry) -> str:
    f = e.fields
    if e.kind == "alert":
        return f"level {'fatal' if f.get('level') == 2 else 'warning'}"
    n = e.name
    if n == "CLIENT_HELLO":
        text = f"versions {', '.join(f['versions'])}; suites {', '.join(f['suites'])}; random {f['random'][:16]}…"
        if "resume" in f:
            r = f["resume"]
            text += (
                f"; resume: a {r['ticket_bytes']}-byte session ticket, X25519 share "
                f"{r['x25519_share'][:16]}…, binder {r['binder'][:16]}…"
            )
        return text
    if n == "SERVER_HELLO":
        text = f"version {f['version']}; suite {f['suite']}; random {f['random'][:16]}…"
        if f.get("resumed"):
            text += "; resuming the offered ticket"
        elif "ticket_refused" in f:
            text += f"; ticket refused: {f['ticket_refused']} (a full handshake follows)"
        return text
    if n == "NEW_SESSION_TICKET":
        return (
            f"{f['ticket_bytes']}-byte ticket, good for {f['lifetime_s']} s and "
            f"{f['max_uses']} resumptions: {f['carries']}"
        )
    if n == "CERTIFICATE":
        certs = f.get("certificates") or []
        text = (
            "; ".join(
                f"{c['subject']} ({c['key']}), issued by {c['issuer']}"
                # a name alone can be copied: the key id says which CA key signed it
                + (f" (key id {c['authority_key_id'][:11]}…)" if c.get("authority_key_id") else "")
                + ", names "
                f"{', '.join(c['names'][:2])}{'…' if len(c['names']) > 2 else ''}"
                for c in certs
            )
            or ("(empty)" if not f["chain"] else ", ".join(f["chain"]))
        )
        staple = f.get("stapled_status_bytes", 0)
        return text + (f" + CA-signed status ({staple} B)" if staple else " (no stapled status)")
    if n == "SERVER_KEY_SHARE" and "public_bytes" in f:  # the hybrid: too long to show
        return f"{f['group']}, {f['public_bytes']} bytes ({f['public_head'][:16]}…): {f['carries']}"
    if n == "SERVER_KEY_SHARE":
        return f"{f['group']} public key {f['public'][:16]}…: {f['carries']}"
    if n == "CERTIFICATE_REQUEST":
        return "send your certificate; signatures accepted: " + ", ".join(f["schemes"])
    if n == "CERTIFICATE_VERIFY":
        return (
            f"{f['scheme']}, {f['signature_len']}-byte signature over the transcript "
            "(proves the private key)"
        )
    if n == "CLIENT_KEY_EXCHANGE":
        extra = f"; server: decryption {f['decrypted']}" if "decrypted" in f else ""
        return f"{f['data_len']} bytes ({f['data_head'][:16]}…): {f.get('carries', '')}{extra}"
    if n == "FINISHED":
        return f"HMAC {f['verify_data'][:16]}… over the whole transcript"
    return json.dumps(f)


# The four steps of the classic explanation, each shown as one block.
STEP_TITLES = {
    "hello": "step 1 — hello: agree on a version and a cipher suite",
    "certificate_verify": "step 2 — certificate verification: who are you, and who says so?",
    "key_exchange": "step 3 — key exchange: a secret only these two can compute",
    "finished": "step 4 — finished → encrypted data: both prove the same keys and transcript, then data under them",
}
STEP_NOTES = {
    "certificate_verify": "(in time, steps 2 and 3 interleave: each side sends its messages of "
    "both as one flight, one round trip; shown here by step)",
}
ON_THE_WIRE = {  # what an eavesdropper sees of each message (MTD/1 sends them unencrypted)
    # TLS 1.3 encrypts these (from its ServerHello on): a watcher of MTD/1 learns who
    # talks to whom, a watcher of TLS 1.3 does not (docs/protocol.md §7a)
    "CERTIFICATE": "clear — real TLS 1.3 encrypts it, hiding who talks to whom",
    "SERVER_KEY_SHARE": "clear: a public key",
    "CLIENT_KEY_EXCHANGE": "clear, useless without a private key",
    "CERTIFICATE_VERIFY": "clear: a signature",
    "FINISHED": "clear: a MAC",
    "NEW_SESSION_TICKET": "clear, sealed: only the server's ticket key opens it",
}


def _ladder(entries: list[TraceEntry], both_sides: bool, failed: bool) -> list[str]:
    if both_sides:
        # what only the receiver learned (the server's OAEP outcome) joins the sent line
        for r in (e for e in entries if e.direction == "recv" and "decrypted" in e.fields):
            for e in entries:
                if e.direction == "send" and e.name == r.name and e.role != r.role:
                    e.fields["decrypted"] = r.fields["decrypted"]
    shown = [
        e
        for e in entries
        if e.kind != "keys" and not (both_sides and e.direction == "recv")  # each message once
    ]
    order = list(STEP_TITLES) + ["alert"]
    lines: list[str] = []
    for step in order:
        block = [e for e in shown if (e.step if e.kind != "alert" else "alert") == step]
        keys = [e for e in entries if e.kind == "keys" and step == "key_exchange"]
        if not block and not keys:
            continue
        alerts = (
            "alerts: the failure, told to the other side"
            if failed
            else "alerts: close_notify, the session's orderly end (not a failure)"
        )
        lines.append(f" {STEP_TITLES.get(step, alerts)}")
        if step in STEP_NOTES and len(block) > 2:
            lines.append(f"   {STEP_NOTES[step]}")
        for e in block:
            sender = (
                e.role if e.direction == "send" else ("server" if e.role == "client" else "client")
            )
            arrow = "client ──▶ server" if sender == "client" else "client ◀── server"
            name = NAMES.get(e.name, e.name)
            lines.append(
                f"   {arrow}  {name:<19}{e.size:>5} B  {_field_text(e)}  "
                f"[on the wire: {ON_THE_WIRE.get(e.name, 'clear')}]"
            )
        if keys:
            lines += _key_lines(keys[0], both_sides and len(keys) > 1, keys)
    return lines


def _key_lines(first: TraceEntry, compare: bool, all_keys: list[TraceEntry]) -> list[str]:
    f = first.fields
    same = compare and all(k.fields["fingerprints"] == f["fingerprints"] for k in all_keys)
    out = [
        "   key schedule"
        + (", identical on both sides" if same else "")
        + " (HKDF-SHA256, labels as in docs/protocol.md §4)",
        "     fp = a fingerprint, the first 8 bytes of a value's SHA-256: it shows a key is "
        "the same on both sides without showing the key",
        "     terms: the transcript hash is the SHA-256 of every handshake message so far, in "
        "order (what signatures and Finished MACs cover); HKDF-Extract mixes the randoms and "
        "the shared secret into one uniform master key; Expand-Label derives a key named by "
        f"its label from it, one per direction (more: {TERMS})",
        f"     transcript hash through the client's Finished  {f['transcript_hash'][:16]}…",
    ]
    out += [f"     fp {fp}  {label}" for label, fp in f["fingerprints"].items()]
    for label, value in (f.get("secrets") or {}).items():
        out.append(f"     SECRET (--show-secrets) {label}: {value}")
    return out


# For a failure: what to do about each reason, in one line.
ADVICE = {
    "unknown_ca": "the certificate comes from a CA this side does not trust: use an identity "
    "from the mesh's CA (`mtlsdemo certs bootstrap`), or add its CA to ca.crt",
    "certificate_expired": "renew it (`mtlsdemo certs bootstrap`); check both clocks",
    "certificate_not_yet_valid": "its notBefore is in the future: check the clocks",
    "identity_mismatch": "the certificate is valid but not the identity expected: "
    "--allow-id / --peer-id, or the route's @SPIFFE_ID",
    "no_common_suite": "no suite both accept: --suites on each side (RSA-OAEP needs RSA keys)",
    "certificate_revoked": "the CA revoked it: `mtlsdemo certs bootstrap` issues a new leaf",
    "status_stale": "the stapled status expired: `mtlsdemo certs refresh-status`",
    "status_missing": "no stapled status: `mtlsdemo certs refresh-status` writes tls.ocsp",
    "status_invalid": "the stapled status is not this certificate's CA's: re-run "
    "`mtlsdemo certs refresh-status`",
    "bad_finished": "the transcripts differ: something changed the handshake in flight",
    "bad_signature": "the CertificateVerify does not verify: the key is not the certificate's",
    "decrypt_error": "a record failed authentication: tampering, or the keys differ",
}


def _result_lines(conn: Connection) -> list[str]:
    r = conn.result
    if r is None:
        return []
    out = [f" {conn.role} verified {r.peer_identity} ({r.peer_subject}):"]
    out += [f"   ✓ {c}" for c in r.checks]
    if r.resumption and r.resumption != "resumed":
        out.append(f"   resumption: {r.resumption}")
    phases = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in r.phases.items())
    out.append(f"   {conn.role} time per step: {phases}")
    return out


def _failure_lines(conns: list[Connection]) -> list[str]:
    out = []
    for c in conns:
        e = c.error
        if e is None:
            continue
        peer = "server" if c.role == "client" else "client"
        if e.origin == "local":
            out.append(f" ✗ the {c.role} refused the {peer}: {e.reason.value} — {e.detail}")
            out.append(
                f"   it sent the alert {e.reason.value}; what to do: "
                f"{ADVICE.get(e.reason.value, 'see docs/troubleshooting.md')}"
            )
        elif e.origin == "remote":
            out.append(f" ✗ the {c.role} was told by the {peer}'s alert: {e.reason.value}")
        else:
            out.append(
                f" ✗ the {c.role} got an alert in clear: {e.reason.value} — the {peer} says so "
                "(unauthenticated: sent before the session keys, anyone on the path could send it)"
            )
    return out


@dataclass(frozen=True)
class TraceConfig:
    """`mtlsdemo handshake`, typed (built from the flags in commands/handshake.py)."""

    certs_dir: Path = Path("certs")
    client_dir: Path | None = None
    server_dir: Path | None = None
    peer_id: tuple[str, ...] = ()
    allow_id: tuple[str, ...] = ()
    suites: tuple[Suite, ...] | None = None
    server_suites: tuple[Suite, ...] | None = None
    require_status: str = "hard"
    show_secrets: bool = False
    connect: tuple[str, int] | None = None
    connect_timeout: float = 5.0
    days_ahead: float = 0.0
    json: bool = False
    hex: bool = False  # ciphertexts and frames whole (by default their first 8 bytes)
    tls13: bool = False  # with --connect to a native gRPC port: the real TLS 1.3 handshake
    resume: bool = False  # a full handshake first (not shown), then the resumed one


IN_MEMORY_ONLY = {
    "days_ahead": "--days-ahead",
    "allow_id": "--allow-id",
    "server_dir": "--server-dir",
    "server_suites": "--server-suites",
}


def run(cfg: TraceConfig) -> int:
    if cfg.tls13:
        return _run_tls13(cfg)
    if cfg.connect:
        given = [flag for attr, flag in IN_MEMORY_ONLY.items() if getattr(cfg, attr)]
        if given:
            raise PkiError(
                f"{', '.join(given)}: only for the in-memory handshake; with --connect the "
                "server is the running sidecar, with its own clock, allow-list and suites "
                "(drop them, or drop --connect)"
            )
    if (
        cfg.connect
        and not cfg.client_dir
        and not (Path(cfg.certs_dir) / "gateway" / "tls.crt").exists()
    ):
        # a throwaway CA would only be refused by the running mesh as unknown_ca:
        # connecting needs the mesh's own identities
        raise PkiError(
            f"handshake --connect: no identity at {Path(cfg.certs_dir) / 'gateway'}: run it "
            "from the directory `make run` ran in (its certs/), or pass --certs-dir (or "
            "--client-dir) pointing at the mesh's certificates"
        )
    certs = _ensure_certs(Path(cfg.certs_dir))
    client_dir = Path(cfg.client_dir) if cfg.client_dir else certs / "gateway"
    server_dir = Path(cfg.server_dir) if cfg.server_dir else certs / "ledger"
    peer_ids = tuple(cfg.peer_id or ())
    ccfg = identity_config(
        client_dir,
        cfg.suites,
        peer_ids,
        require_status=cfg.require_status,
        trace=True,
        show_secrets=cfg.show_secrets,
    )
    if cfg.resume:
        ccfg = dataclasses.replace(ccfg, ticket_cache=TicketCache(), ticket_peer="traced")
    if cfg.connect:
        return _run_connected(cfg, ccfg)
    scfg = identity_config(
        server_dir,
        cfg.server_suites or SUITES,  # the in-memory server accepts every suite
        tuple(cfg.allow_id or ()),
        require_status=cfg.require_status,
        trace=True,
    )
    if cfg.resume:
        scfg = dataclasses.replace(scfg, tickets=TicketKeys())
    now = dt.datetime.now(dt.UTC) + dt.timedelta(days=cfg.days_ahead)
    if cfg.resume:  # the full one, for its ticket; its failure is the one to show
        c, s, error = handshake_in_memory(ccfg, scfg, now)
        if error is not None or not ccfg.ticket_cache:
            entries = sorted(c.trace + s.trace, key=lambda e: e.at)
            return _print(cfg, entries, [c, s], [], error, both_sides=True)
    c, s, error = handshake_in_memory(ccfg, scfg, now)
    records = [] if error else _demo_records(c, s)
    entries = sorted(c.trace + s.trace, key=lambda e: e.at)
    return _print(cfg, entries, [c, s], records, error, both_sides=True)


def _demo_records(c: Connection, s: Connection) -> list[dict[str, Any]]:
    out = []
    for i, msg in enumerate(DEMO_MESSAGES):
        src, dst = (c, s) if i % 2 == 0 else (s, c)
        src.send_data(msg)
        wire = src.data_to_send()
        got = [e.data for e in dst.receive_data(wire) if isinstance(e, DataReceived)]
        out.append(
            {
                "from": src.role,
                "plaintext": msg.decode(),
                "record_bytes": len(wire),
                "header": wire[:HEADER_LEN].hex(),
                "ciphertext": wire[HEADER_LEN:].hex(),
                "decrypted_by_peer": b"".join(got).decode(),
            }
        )
    return out


def _run_tls13(cfg: TraceConfig) -> int:
    from mtlsdemo.explain.tls13 import handshake_messages, table

    if cfg.connect is None:
        raise PkiError("--tls13: needs --connect HOST:PORT of a native gRPC mTLS port")
    host, port = cfg.connect
    material = IdentitySource(cfg.client_dir or cfg.certs_dir / "gateway").current
    messages, version, cipher = handshake_messages(host, port, material, host, cfg.connect_timeout)
    if cfg.json:
        print(
            json.dumps(
                {"version": version, "cipher": cipher, "messages": [m.__dict__ for m in messages]},
                indent=2,
            )
        )
    else:
        print("\n".join(table(messages, version, cipher)))
    return 0


H2_FRAME_TYPES = {
    0: "DATA",
    1: "HEADERS",
    3: "RST_STREAM",
    4: "SETTINGS",
    6: "PING",
    7: "GOAWAY",
    8: "WINDOW_UPDATE",
}


def h2_frames(data: bytes) -> str:
    """HTTP/2 frames named by type (RFC 9113 §4.1: 3-byte length, type, flags,
    stream), instead of their bytes in hex."""
    names, at = [], 0
    while at + 9 <= len(data):
        length, kind, flags = int.from_bytes(data[at : at + 3], "big"), data[at + 3], data[at + 4]
        name = H2_FRAME_TYPES.get(kind, f"type {kind}")
        ack = kind in (4, 6) and flags & 1
        names.append(f"{name}{' (ack)' if ack else ''} {length} B")
        at += 9 + length
    if at < len(data):
        names.append(f"{len(data) - at} B more")
    return ", ".join(names) or "none"


def _run_connected(cfg: TraceConfig, ccfg: HandshakeConfig) -> int:
    assert cfg.connect is not None  # run() calls this only with --connect
    host, port = cfg.connect  # (host, port), parsed at the edge
    if cfg.resume:  # a full handshake first, for the sidecar's ticket
        first = dial.handshake(host, port, ccfg, timeout=cfg.connect_timeout)
        if first.error is None:
            first.conn.close()
            first.sock.sendall(first.conn.data_to_send())
        first.sock.close()
        if first.error is not None or not ccfg.ticket_cache:
            if first.error is None:
                raise PkiError(
                    f"--resume: the sidecar at {host}:{port} issued no session ticket (it runs "
                    "with --no-session-tickets, or speaks only MTD/1.0): drop --resume"
                )
            return _print(cfg, first.conn.trace, [first.conn], [], first.error, both_sides=False)
    attempt = dial.handshake(host, port, ccfg, timeout=cfg.connect_timeout)
    c, error, sock = attempt.conn, attempt.error, attempt.sock
    records: list[dict[str, Any]] = []
    with sock:
        if error is None:
            # Real traffic: an HTTP/2 client preface; the app behind the sidecar
            # (a gRPC server) answers with its SETTINGS frame, decrypted here.
            preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
            c.send_data(preface)
            wire = c.data_to_send()
            sock.sendall(wire)
            records.append(
                {
                    "from": "client",
                    "plaintext": f"the HTTP/2 client preface and a SETTINGS frame ({len(preface)} bytes)",
                    "record_bytes": len(wire),
                    "header": wire[:HEADER_LEN].hex(),
                    "ciphertext": wire[HEADER_LEN:].hex(),
                }
            )
            sock.settimeout(cfg.connect_timeout)
            try:
                data = sock.recv(65536)
                evs = c.receive_data(data) if data else []
                got = b"".join(e.data for e in evs if isinstance(e, DataReceived))
                records.append(
                    {
                        "from": "server",
                        "plaintext": f"the app's HTTP/2 frames ({len(got)} bytes): "
                        + h2_frames(got)
                        + ("" if not cfg.hex else f" — {got.hex()}"),
                        "record_bytes": len(data),
                        "header": data[:HEADER_LEN].hex(),
                        "ciphertext": data[HEADER_LEN:].hex(),
                    }
                )
            except (TimeoutError, ProtocolError) as e:
                records.append(
                    {
                        "from": "server",
                        "plaintext": f"(no reply: {e})",
                        "record_bytes": 0,
                        "header": "",
                        "ciphertext": "",
                    }
                )
            c.close()
            sock.sendall(c.data_to_send())
    return _print(cfg, c.trace, [c], records, error, both_sides=False, hint=attempt.hint)


def _print(
    cfg: TraceConfig,
    entries: list[TraceEntry],
    conns: list[Connection],
    records: list[dict[str, Any]],
    error: ProtocolError | None,
    both_sides: bool,
    hint: str = "",
) -> int:
    t = Traced(entries, conns, records, error, both_sides, hint)
    if cfg.json:
        _print_json(t)
    else:
        print("\n".join(fold(_text(cfg, t))))
    return 0 if error is None else 1


@dataclass(frozen=True)
class Traced:
    """One traced handshake, as both printers take it."""

    entries: list[TraceEntry]
    conns: list[Connection]
    records: list[dict[str, Any]]
    error: ProtocolError | None
    both_sides: bool
    hint: str


def fold(lines: list[str], width: int = WIDTH) -> list[str]:
    """Lines of at most `width` columns: a longer one wraps, its continuation
    indented four more than its start."""
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        out += textwrap.wrap(
            line,
            width,
            subsequent_indent=indent,
            break_on_hyphens=False,
            drop_whitespace=True,
        )
    return out


def _short(hex_text: str, whole: bool) -> str:
    return hex_text if whole or len(hex_text) <= SHORT_HEX else hex_text[:SHORT_HEX] + "…"


def _print_json(t: Traced) -> None:
    entries, conns, records, error, hint = t.entries, t.conns, t.records, t.error, t.hint
    doc = {
        "messages": [e.as_dict() for e in entries],
        "results": [
            {
                # fields(), not __dict__: a compiled (mypyc) dataclass has none
                **{f.name: getattr(c.result, f.name) for f in dataclasses.fields(c.result)},
                "peer_not_after": c.result.peer_not_after.isoformat(),
                "checks": list(c.result.checks),
            }
            for c in conns
            if c.result
        ],
        "records": records,
        "error": None
        if error is None
        else {
            "reason": error.reason.value,
            "origin": error.origin,
            "detail": error.detail,
            **({"hint": hint} if hint else {}),
        },
        "errors": [
            {
                "role": c.role,
                "reason": c.error.reason.value,
                "origin": c.error.origin,
                "detail": c.error.detail,
                "what_to_do": ADVICE.get(c.error.reason.value, "see docs/troubleshooting.md")
                if c.error.origin == "local"
                else "",
            }
            for c in conns
            if c.error
        ],
    }
    print(json.dumps(doc, indent=2, default=str))


def _text(cfg: TraceConfig, t: Traced) -> list[str]:
    entries, conns, records, error, hint = t.entries, t.conns, t.records, t.error, t.hint
    both_sides = t.both_sides
    out: list[str] = []
    first = conns[0]
    client = first.config.credentials.leaf.subject.rfc4514_string()
    if cfg.connect:
        out.append(
            f"MTD/1 handshake trace against {cfg.connect[0]}:{cfg.connect[1]} (over TCP; only "
            f"this client's side is seen here): client {client}"
        )
    else:
        out.append(
            f"MTD/1 handshake trace, in memory (both sides in this process, no network; "
            f"--connect HOST:PORT for a running sidecar): client {client}"
        )
    out += _ladder(entries, both_sides, failed=error is not None)
    for c in conns:
        out += _result_lines(c)
    if first.result:
        r = first.result
        kx = {
            "ECDHE-X25519": "ephemeral X25519: both sides made a fresh key pair; the secret "
            "never crossed the wire (forward secrecy) — but a recording of it could be opened "
            "by a future quantum computer",
            "X25519MLKEM768": "hybrid, post-quantum: the server sent a fresh ML-KEM-768 key "
            "(1,184 B) and a fresh X25519 key; the client answered with an ML-KEM ciphertext "
            "(1,088 B) only that key opens, and its own X25519 key. The session key needs both "
            "secrets: ML-KEM-768 protects a recording against a future quantum computer "
            "('harvest now, decrypt later'), X25519 protects it should ML-KEM, the younger "
            "design, fall to a classical attack; forward secrecy too: both key pairs are dropped",
            "RSA-OAEP": "RSA-OAEP: the client encrypted a random 48-byte pre-master secret to "
            "the server's certificate key (no forward secrecy; whoever holds that key can also "
            "write as the client in a live session: docs/protocol.md §5)",
        }[r.key_exchange]
        if r.resumed:
            kx = (
                "resumed from a session ticket: fresh X25519 key pairs on both sides, mixed "
                "with the ticket's secret (forward secrecy kept); no certificate, no signature"
            )
        out.append(f" key exchange: {kx}")
        out.append(
            f" session: {r.version}, {r.suite}, handshake {r.duration * 1e3:.2f} ms"
            + (", resumed" if r.resumed else "")
        )
    if error is not None:
        out += _failure_lines(conns)
        if hint:
            out.append(f"   hint: {hint}")
    if records:
        out.append(
            " step 4 data: encrypted records (header | ciphertext+tag), then what the peer "
            "decrypted" + ("" if cfg.hex else " (--hex: the whole ciphertexts)")
        )
        for rec in records:
            out.append(f"   {rec['from']:>6} sends: {rec['plaintext']!s}")
            if rec["record_bytes"]:
                out.append(
                    f"           {rec['record_bytes']} B on the wire: {rec['header']} | "
                    f"{_short(rec['ciphertext'], cfg.hex)}"
                )
            if "decrypted_by_peer" in rec:
                out.append(
                    f"           peer decrypts and authenticates: {rec['decrypted_by_peer']}"
                )
    return out
