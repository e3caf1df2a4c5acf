"""What ``mtlsdemo agent`` is told: typed, checked once at the command's edge."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from mtlsdemo.agent.issuer import Workload
from mtlsdemo.pki.identity import ServiceIdentity
from mtlsdemo.trust.spiffe import DEFAULT_TRUST_DOMAIN

DEFAULT_TTL = dt.timedelta(hours=24)  # SPIRE's, Istio's and step-ca's default
MIN_TTL = dt.timedelta(seconds=10)  # shorter: issuance and the push outrun the lifetime
SOCKET = "agent.sock"


class AgentConfigError(Exception):
    """A setting the agent cannot start with (the message names the flag)."""


def socket_path(socket_dir: Path, workload: str) -> Path:
    """Each workload's own socket, in its own directory: mounting that directory
    (and only it) into a workload is what gives it this identity."""
    return socket_dir / workload / SOCKET


@dataclass(frozen=True)
class AgentConfig:
    """The agent's settings: the CA to issue from, the workloads and their sockets."""

    certs_dir: Path
    socket_dir: Path
    workloads: tuple[str, ...] = ("gateway", "ledger")
    namespace: str = "default"
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    ttl: dt.timedelta = DEFAULT_TTL
    key_type: str = "ecdsa-p256"
    admin_listen: tuple[str, int] | None = None
    tick: float = 1.0  # how often renewals, the bundle and the CRL are checked
    # other trust domains to trust, each by its bundle's source (an endpoint or a file)
    federate_with: tuple[tuple[str, str], ...] = ()

    def validate(self) -> None:
        if self.ttl < MIN_TTL:
            raise AgentConfigError(
                f"--svid-ttl: {self.ttl.total_seconds():g}s is shorter than the "
                f"{MIN_TTL.total_seconds():g}s an issuance and its push need; give 10s or more"
            )
        for td, _source in self.federate_with:
            if td == self.trust_domain:
                raise AgentConfigError(
                    f"--federate-with {td}=…: that is our own trust domain (its bundle is "
                    "the CA's); federate with another"
                )
        if not self.workloads:
            raise AgentConfigError("--workload: name at least one workload to serve")
        if len(set(self.workloads)) != len(self.workloads):
            raise AgentConfigError("--workload: a workload is named twice")
        longest = max(len(str(socket_path(self.socket_dir, w))) for w in self.workloads)
        if longest > 100:  # sun_path holds 108 bytes with the terminator
            raise AgentConfigError(
                f"--socket-dir: {self.socket_dir} makes socket paths of {longest} bytes; "
                "a Unix socket path holds at most 107: choose a shorter directory"
            )

    def workload(self, name: str) -> Workload:
        return Workload(name, ServiceIdentity.checked(name, self.namespace, self.trust_domain))
