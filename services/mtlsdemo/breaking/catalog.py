"""The scenarios of `mtlsdemo break`, by name (cheap to import: `--help`)."""

SCENARIOS = {
    "foreign-ca": "a certificate from another CA: the ledger's sidecar says unknown_ca",
    "expired": "a certificate past its notAfter: certificate_expired",
    "not-yet-valid": "a certificate before its notBefore: certificate_not_yet_valid",
    "wrong-identity": "a valid certificate for an identity not allowed: identity_mismatch",
    "wrong-server-name": "the server is not who the client expects: the client refuses",
    "tamper": "one bit flipped in flight: the record's AEAD tag fails (decrypt_error)",
    "downgrade": "the quantum-safe suites stripped from the ClientHello in flight: the server's signature over it fails",
    "no-common-suite": "a quantum-safe-only gateway meets a ledger not yet upgraded: no_common_suite",
    "clock-skew": "a client clock 40 days ahead refuses valid certificates",
    "slow-handshake": "a client that never says hello: the sidecar's deadline",
    "revoked": "the gateway's certificate revoked while the mesh runs: certificate_revoked",
    "stale-status": "the gateway's stapled status past nextUpdate: status_stale",
}
