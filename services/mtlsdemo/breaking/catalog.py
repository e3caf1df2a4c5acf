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
    "ca-down": "(a --workload-api mesh) the CA stops issuing: the SVIDs in hand are the "
    "budget, then certificate_expired",
    "alias": "(a --domains 2 mesh) the other domain's CA signs one of our names: federation "
    "refuses it unknown_ca, where an alias would have accepted it",
    "bundle-missing": "(a --domains 2 mesh) no bundle for the other trust domain: unknown_ca, "
    "naming the domain whose bundle is missing",
    "stale-bundle": "(a --domains 2 mesh) the other domain rolls its CA over: a refreshed bundle "
    "keeps every tunnel, a stale copy refuses the new SVID unknown_ca",
    "authz-deny-method": "a DENY rule takes Transfer from the cli: the handshake passes, "
    "GetBalance works, Transfer is PERMISSION_DENIED naming the rule",
    "authz-empty-allow": "an ALLOW policy with no rules: the ledger's sidecar refuses every "
    "caller at the handshake (identity_mismatch), naming the policy",
    "authz-dry-run": "a policy with a typo tried in dry-run first: nothing is refused, its "
    "would-deny count names it before it would cut the gateway off",
}

# The reason each scenario ends in (its report checks it); the step it breaks follows
# from the reason, as the core files it (handshake.errors.STEP_OF_REASON).
REASONS = {
    "foreign-ca": "unknown_ca",
    "expired": "certificate_expired",
    "not-yet-valid": "certificate_not_yet_valid",
    "wrong-identity": "identity_mismatch",
    "wrong-server-name": "identity_mismatch",
    "tamper": "decrypt_error",
    "downgrade": "bad_signature",
    "no-common-suite": "no_common_suite",
    "clock-skew": "certificate_expired",
    "slow-handshake": "handshake_timeout",
    "revoked": "certificate_revoked",
    "stale-status": "status_stale",
    "ca-down": "certificate_expired",
    "alias": "unknown_ca",
    "bundle-missing": "unknown_ca",
    "stale-bundle": "unknown_ca",
    "authz-deny-method": "PERMISSION_DENIED",  # after the handshake: a call, refused
    "authz-empty-allow": "identity_mismatch",
    "authz-dry-run": "identity_mismatch",  # what it would be, once enforced
}


def step_of(scenario: str) -> str:
    """Which of the four steps a scenario breaks, in words (`break --list`)."""
    from mtlsdemo.handshake.errors import STEP_OF_REASON, Reason
    from mtlsdemo.steps import STEP_TITLES

    if REASONS[scenario] == "PERMISSION_DENIED":  # gRPC's status: the handshake passed
        return "after step 4 — authorization"
    reason = Reason(REASONS[scenario])
    # a record's tag belongs to the encrypted data; a peer that never says hello, to step 1
    fallback = {Reason.DECRYPT_ERROR: "data", Reason.HANDSHAKE_TIMEOUT: "hello"}
    return STEP_TITLES[STEP_OF_REASON.get(reason) or fallback[reason]]
