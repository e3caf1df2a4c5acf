"""The scenarios of `mtlsdemo break`, by name (cheap to import: `--help`): each one
record — what it shows, the reason its report ends in, where its run lives (imported
only when it runs)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scenario:
    """One `break` scenario: its name, its one-line summary (`--list`, the console's
    buttons), the reason its report ends in (which step it breaks follows from it) and
    its run as "module:function" (called with the mesh, the report and a work dir)."""

    name: str
    summary: str
    reason: str
    run: str

    def runner(self) -> Callable[..., Any]:
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


CATALOG: tuple[Scenario, ...] = (
    Scenario(
        "foreign-ca",
        "a certificate from another CA: the ledger's sidecar says unknown_ca",
        "unknown_ca",
        "mtlsdemo.breaking.scenarios:foreign_ca",
    ),
    Scenario(
        "expired",
        "a certificate past its notAfter: certificate_expired",
        "certificate_expired",
        "mtlsdemo.breaking.scenarios:expired",
    ),
    Scenario(
        "not-yet-valid",
        "a certificate before its notBefore: certificate_not_yet_valid",
        "certificate_not_yet_valid",
        "mtlsdemo.breaking.scenarios:not_yet_valid",
    ),
    Scenario(
        "wrong-identity",
        "a valid certificate for an identity not allowed: identity_mismatch",
        "identity_mismatch",
        "mtlsdemo.breaking.scenarios:wrong_identity",
    ),
    Scenario(
        "wrong-server-name",
        "the server is not who the client expects: the client refuses",
        "identity_mismatch",
        "mtlsdemo.breaking.scenarios:wrong_server_name",
    ),
    Scenario(
        "tamper",
        "one bit flipped in flight: the record's AEAD tag fails (decrypt_error)",
        "decrypt_error",
        "mtlsdemo.breaking.scenarios:tamper",
    ),
    Scenario(
        "downgrade",
        "the quantum-safe suites stripped from the ClientHello in flight: the server's signature over it fails",
        "bad_signature",
        "mtlsdemo.breaking.scenarios:downgrade",
    ),
    Scenario(
        "no-common-suite",
        "a quantum-safe-only gateway meets a ledger not yet upgraded: no_common_suite",
        "no_common_suite",
        "mtlsdemo.breaking.scenarios:no_common_suite",
    ),
    Scenario(
        "clock-skew",
        "a client clock 40 days ahead refuses valid certificates",
        "certificate_expired",
        "mtlsdemo.breaking.scenarios:clock_skew",
    ),
    Scenario(
        "slow-handshake",
        "a client that never says hello: the sidecar's deadline",
        "handshake_timeout",
        "mtlsdemo.breaking.scenarios:slow_handshake",
    ),
    Scenario(
        "revoked",
        "the gateway's certificate revoked while the mesh runs: certificate_revoked",
        "certificate_revoked",
        "mtlsdemo.breaking.scenarios:revoked",
    ),
    Scenario(
        "stale-status",
        "the gateway's stapled status past nextUpdate: status_stale",
        "status_stale",
        "mtlsdemo.breaking.scenarios:stale_status",
    ),
    Scenario(
        "ca-down",
        "(a --workload-api mesh) the CA stops issuing: the SVIDs in hand are the budget, then certificate_expired",
        "certificate_expired",
        "mtlsdemo.breaking.scenarios:ca_down",
    ),
    Scenario(
        "alias",
        "(a --domains 2 mesh) the other domain's CA signs one of our names: federation refuses it unknown_ca, where an alias would have accepted it",
        "unknown_ca",
        "mtlsdemo.breaking.federation:alias",
    ),
    Scenario(
        "bundle-missing",
        "(a --domains 2 mesh) no bundle for the other trust domain: unknown_ca, naming the domain whose bundle is missing",
        "unknown_ca",
        "mtlsdemo.breaking.federation:bundle_missing",
    ),
    Scenario(
        "stale-bundle",
        "(a --domains 2 mesh) the other domain rolls its CA over: a refreshed bundle keeps every tunnel, a stale copy refuses the new SVID unknown_ca",
        "unknown_ca",
        "mtlsdemo.breaking.federation:stale_bundle",
    ),
    Scenario(
        "authz-deny-method",
        "a DENY rule takes Transfer from the cli: the handshake passes, GetBalance works, Transfer is PERMISSION_DENIED naming the rule",
        "PERMISSION_DENIED",  # after the handshake: a call, refused
        "mtlsdemo.breaking.authz:deny_method",
    ),
    Scenario(
        "authz-empty-allow",
        "an ALLOW policy with no rules: the ledger's sidecar refuses every caller at the handshake (identity_mismatch), naming the policy",
        "identity_mismatch",
        "mtlsdemo.breaking.authz:empty_allow",
    ),
    Scenario(
        "authz-dry-run",
        "a policy with a typo tried in dry-run first: nothing is refused, its would-deny count names it before it would cut the gateway off",
        "identity_mismatch",  # what it would be, once enforced
        "mtlsdemo.breaking.authz:dry_run",
    ),
)
BY_NAME = {s.name: s for s in CATALOG}
# the views the commands and the console read
SCENARIOS = {s.name: s.summary for s in CATALOG}
REASONS = {s.name: s.reason for s in CATALOG}


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
