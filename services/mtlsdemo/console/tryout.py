"""The page's "run a handshake" panel: one MTD/1 handshake in memory, between
throwaway identities made for it (never the mesh's keys), with a failure to
provoke on request; both sides' views, drawn like the sidecars' ladders."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mtlsdemo.endpoint.identity import identity_config
from mtlsdemo.endpoint.memory import Wire, exchange, handshake_in_memory
from mtlsdemo.explain.illustrate import message_runs
from mtlsdemo.handshake import SUITES, Connection, parse_suites
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from mtlsdemo.pki.keys import KEY_TYPES
from mtlsdemo.sidecar.journal import Entry
from mtlsdemo.sidecar.outcome import outcome_of
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN, workload_id
from mtlsdemo.wire.pcap import pcap_bytes

PROVOKE = {
    "none": "nothing: a clean handshake",
    "foreign-ca": "the server's certificate comes from another CA (the client refuses it)",
    "expired": "40 days later: the certificates have expired",
    "wrong-identity": "the server allows another client identity only",
    "wrong-server-name": "the client expects another server identity",
    "no-common-suite": "client and server enable no suite in common",
}


class TryoutError(ValueError):
    """A request the panel cannot run (unknown key type, suite or failure)."""


@dataclass(frozen=True)
class TryRequest:
    key_type: str = "ecdsa-p256"
    suite: str = "X25519MLKEM768-AES-256-GCM"  # the mesh's default offer
    provoke: str = "none"

    def check(self) -> None:
        if self.key_type not in KEY_TYPES:
            raise TryoutError(f"key type {self.key_type!r}: one of {', '.join(KEY_TYPES)}")
        if self.provoke not in PROVOKE:
            raise TryoutError(f"failure {self.provoke!r}: one of {', '.join(PROVOKE)}")
        try:
            parse_suites(self.suite)
        except ValueError as e:
            raise TryoutError(str(e)) from None


class Tryout:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._lock = threading.Lock()  # one bootstrap per directory at a time

    def _pki(self, key_type: str, which: str) -> Path:
        out = self.workdir / f"{which}-{key_type}"
        with self._lock:
            if not (out / "ledger" / "tls.crt").exists():
                logging.getLogger("mtlsdemo.pki").setLevel(logging.WARNING)
                bootstrap(
                    BootstrapRequest(
                        out=out,
                        services=("gateway", "ledger"),
                        key_type=key_type,
                        # the foreign CA is told apart by name, as `break foreign-ca`'s is
                        ca_name="impostor root CA" if which == "other" else None,
                    )
                )
        return out

    def run(self, req: TryRequest) -> dict[str, Any]:
        req.check()
        pki = self._pki(req.key_type, "main")
        server_pki = self._pki(req.key_type, "other") if req.provoke == "foreign-ca" else pki
        suites = parse_suites(req.suite)
        others = tuple(s for s in SUITES if s not in suites)
        server_suites = others if req.provoke == "no-common-suite" else SUITES
        ledger, gateway = (
            workload_id(DEFAULT_TRUST_DOMAIN, "default", "ledger"),
            workload_id(DEFAULT_TRUST_DOMAIN, "default", "gateway"),
        )
        expect = (
            workload_id(DEFAULT_TRUST_DOMAIN, "default", "not-the-ledger")
            if req.provoke == "wrong-server-name"
            else ledger
        )
        allowed = (
            workload_id(DEFAULT_TRUST_DOMAIN, "default", "someone-else")
            if req.provoke == "wrong-identity"
            else gateway
        )
        # throwaway identities: their session secrets may be shown (and downloaded)
        ccfg = replace(identity_config(pki / "gateway", suites, (expect,)), keep_secrets=True)
        scfg = replace(
            identity_config(server_pki / "ledger", server_suites, (allowed,)), keep_secrets=True
        )
        now = dt.datetime.now(dt.UTC) + dt.timedelta(days=40 if req.provoke == "expired" else 0)
        wire: Wire = []
        c, s, error = handshake_in_memory(ccfg, scfg, now, wire)
        if error is None:
            exchange(c, s, b"GET /balance/alice (the in-memory client)", b"alice: 12.50", wire)
        views = []
        for conn, local in ((c, gateway), (s, ledger)):
            duration = conn.result.duration if conn.result else 0.0
            outcome = outcome_of(conn, "in memory", local, "in memory", duration, conn.error)
            doc = Entry(0, dt.datetime.now(dt.UTC), f"in-memory {conn.role}", outcome).as_dict()
            views.append({**doc, "key": f"try-{conn.role}"})
        return {
            "request": req.__dict__,
            "what": PROVOKE[req.provoke],
            "outcome": "success" if error is None else error.reason.value,
            "handshakes": views,
            "capture": capture_of(wire, c),
            # every message's bytes, labelled where the encoder joined them (the byte view)
            "bytes": message_runs(wire),
        }


def capture_of(wire: Wire, client: Connection) -> dict[str, str]:
    """The handshake as a pcap Wireshark opens (with the MTD/1 dissector), and the
    key log that decrypts its records: these identities are throwaway ones."""
    name = "mtlsdemo-in-memory"
    return {
        "pcap_base64": base64.b64encode(pcap_bytes(wire)).decode(),
        "pcap_name": f"{name}.pcap",
        "keys": client.secrets.key_log_lines() if client.secrets else "",
        "keys_name": f"{name}.keys",
        "open": f"tshark -X lua_script:$(mtlsdemo wireshark --print-path) "
        f"-o mtd.keylog_file:{name}.keys -r {name}.pcap -V",
    }
