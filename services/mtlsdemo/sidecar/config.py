"""Sidecar configuration: identity, inbound listener, outbound routes, protocol knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mtlsdemo.addresses import DEFAULT_PORTS, parse_hostport
from mtlsdemo.handshake import DEFAULT_SUITES, Suite
from mtlsdemo.handshake.suites import DEFAULT_VERSIONS
from mtlsdemo.trust import IdentityPolicy, PolicyError


class SidecarConfigError(ValueError):
    """A flag that cannot work; the CLI prints it on one line and exits 2."""


def split_hostport(text: str, flag: str) -> tuple[str, int]:
    try:
        return parse_hostport(text)
    except ValueError as e:
        raise SidecarConfigError(f"{flag}: {e}") from None


@dataclass(frozen=True)
class Route:
    """Outbound: a local plaintext listener -> a remote sidecar that must present ``identity``."""

    listen: tuple[str, int]
    remote: tuple[str, int]
    identity: str
    # a Unix socket instead of ``listen``: its directory's mode says who may call
    # (the in-process caller's, 0700) where a loopback port admits every local user
    unix: Path | None = None

    @classmethod
    def parse(cls, text: str) -> Route:
        # LISTEN=REMOTE@SPIFFE_ID, e.g. 127.0.0.1:15001=ledger:8443@spiffe://td/ns/default/sa/ledger
        listen, eq, rest = text.partition("=")
        remote, at, identity = rest.partition("@")
        if not eq or not at or not identity.startswith("spiffe://"):
            raise SidecarConfigError(
                f"--route: {text!r} is not LISTEN=REMOTE@SPIFFE_ID "
                "(e.g. 127.0.0.1:15001=ledger:8443@spiffe://mtls-demo.local/ns/default/sa/ledger)"
            )
        try:
            IdentityPolicy.parse([identity])  # exact, or `*` for one whole segment, as --allow-id
        except PolicyError as e:
            raise SidecarConfigError(f"--route {text!r}: {str(e).split(': ', 1)[-1]}") from None
        route = cls(split_hostport(listen, "--route"), split_hostport(remote, "--route"), identity)
        if route.listen[0] not in ("127.0.0.1", "localhost", "::1"):
            raise SidecarConfigError(
                f"--route: local listener {listen} must be on 127.0.0.1: "
                "it accepts plaintext from the app"
            )
        return route

    @property
    def local(self) -> str:
        return f"unix:{self.unix}" if self.unix else f"{self.listen[0]}:{self.listen[1]}"

    @property
    def label(self) -> str:
        """How the journal names this route: its local port, or ``unix``."""
        return "route unix" if self.unix else f"route {self.listen[1]}"

    def __str__(self) -> str:
        return f"{self.local} -> {self.remote[0]}:{self.remote[1]} ({self.identity})"


@dataclass
class SidecarConfig:
    identity_dir: Path
    # the identity from a SPIFFE Workload API socket instead of identity_dir's files
    workload_api: str | None = None
    # a CRL file to check peers against besides their stapled status (None: staples
    # only): a revocation then applies at the next handshake and ends its tickets
    crl: Path | None = None
    crl_required: bool = False  # an issuer without a CRL in force is refused
    crl_state: Path | None = None  # the CRL high-water mark; None: beside the identity
    authz_policy: Path | None = None  # an authorization policy file, decided per connection
    authz_methods: frozenset[str] | None = None  # the mesh's methods, to check the file's names
    inbound_listen: tuple[str, int] | None = None
    inbound_target: tuple[str, int] | None = None
    allowed_ids: tuple[str, ...] = ()
    routes: list[Route] = field(default_factory=list)
    suites: tuple[Suite, ...] = DEFAULT_SUITES
    versions: tuple[int, ...] = DEFAULT_VERSIONS  # older ones: a loud, explicit setting
    server_preference: bool = False
    handshake_timeout: float = 5.0
    max_pending_handshakes: int = 512
    # beyond the cap, connections wait (a few KiB each, no CPU) rather than being
    # refused: a burst of connects goes through in turn
    max_waiting_handshakes: int = 4096
    # pending + waiting inbound connections from one IP address (0: no cap): one
    # unauthenticated source cannot hold the whole room (a gateway pod's burst fits)
    max_handshakes_per_source: int = 1024
    # session resumption (MTD/1.1): tickets issued (inbound) and offered (routes)
    session_tickets: bool = True
    ticket_lifetime: int = 3600  # seconds
    ticket_max_uses: int = 256  # resumptions per ticket
    require_status: str = "hard"  # the peer's stapled status: hard, soft or off
    # accept queue of every listener: asyncio's default 100 overflows on a burst of
    # connects and the kernel makes clients wait for SYN retries (1 s, 3 s, 7 s)
    listen_backlog: int = 4096
    key_update_records: int = 0
    key_update_bytes: int = 0
    admin_listen: tuple[str, int] | None = ("127.0.0.1", DEFAULT_PORTS["gateway_admin"])
    reload_interval: float = 1.0
    drain_timeout: float = 10.0
    name: str = "sidecar"
    event_loop: str = "asyncio"
    # append every session's traffic secrets here (NSS key log format): whoever reads
    # the file decrypts the traffic; off unless asked for, loud when on
    keylog: Path | None = None

    def validate(self) -> None:
        if self.workload_api and self.crl is not None and self.crl_state is None:
            raise SidecarConfigError(
                "--crl with --spiffe-endpoint-socket needs --crl-state FILE: there is no identity "
                "directory to keep the CRL high-water mark in"
            )
        if self.crl_required and self.crl is None:
            raise SidecarConfigError("--crl-required needs --crl FILE: the CRL to require")
        if (self.inbound_listen is None) != (self.inbound_target is None):
            raise SidecarConfigError("--inbound-listen and --inbound-target go together")
        if self.inbound_target and self.inbound_target[0] not in ("127.0.0.1", "localhost", "::1"):
            raise SidecarConfigError(
                "--inbound-target must be on 127.0.0.1: the app behind the "
                "sidecar listens on loopback only"
            )
        if self.inbound_listen is None and not self.routes:
            raise SidecarConfigError(
                "nothing to do: give --inbound-listen/--inbound-target, --route, or both"
            )
        if self.max_pending_handshakes < 1:
            raise SidecarConfigError("--max-pending-handshakes must be at least 1")
        if self.max_waiting_handshakes < 0:
            raise SidecarConfigError("--max-waiting-handshakes must be 0 or more")
        if self.max_handshakes_per_source < 0:
            raise SidecarConfigError("--max-handshakes-per-source must be 0 or more")
        if self.ticket_lifetime < 1 or self.ticket_max_uses < 1:
            raise SidecarConfigError("--ticket-lifetime and --ticket-max-uses must be at least 1")
        if self.listen_backlog < 1:
            raise SidecarConfigError("--listen-backlog must be at least 1")
        if self.handshake_timeout <= 0:
            raise SidecarConfigError("--handshake-timeout must be positive")
