"""Addresses: HOST:PORT parsing, loopback hosts, the local mesh's ports (the one
address book: every default port of `mtlsdemo run`, by flag) and free TCP ports on
127.0.0.1 for local runs, benches and tests. It imports nothing of the package, so
every layer may use it.

A port found with ``bind(0)`` comes from the kernel's ephemeral range, the same
range every outgoing ``connect()`` draws its source port from: between the moment
it is picked and the moment a child process binds it, any connection on the
machine can take it. So ports are picked *below* the ephemeral range, where the
kernel never hands out source ports, and never twice in one process.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
from pathlib import Path

_SPAN = 10_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _candidates() -> itertools.cycle[int]:
    high = _ephemeral_low()
    low = max(1024, high - _SPAN)
    ports = list(range(low, high))
    # start where another process (a second pytest, a bench) is unlikely to be
    start = (os.getpid() * 7919) % len(ports)
    return itertools.cycle(ports[start:] + ports[:start])


_next = _candidates()
_given: set[int] = set()


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_hostport(text: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """HOST:PORT (or :PORT, host defaulted; [v6] unbracketed); ValueError naming the text."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or default_host, int(port)


def host_of(address: str) -> str:
    """The host part of HOST:PORT as written (``[::1]:1`` -> ``::1``; empty if none)."""
    return address.rpartition(":")[0].strip("[]")


def free_port() -> int:
    """A port nobody listens on, outside the ephemeral range, new to this process."""
    for _ in range(_SPAN):
        port = next(_next)
        if port not in _given and bindable(port):
            _given.add(port)
            return port
    with socket.socket() as s:  # everything below the range is taken: the old way
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Every port `mtlsdemo run` listens on, by its flag (--<name>-port), with its default:
# the one address book that `run`, `break`, `tour`, `client`, the console and the
# sidecar's flags take their defaults from.
DEFAULT_PORTS: dict[str, int] = {
    "ledger": 50051,  # the ledger sidecar's MTD/1 port
    "gateway": 50052,  # the gateway's public port: native gRPC mTLS, or its sidecar's MTD/1
    "ledger_metrics": 9101,
    "gateway_metrics": 9102,
    "ledger_app": 50061,  # the ledger's plaintext port behind its sidecar
    "route": 15001,  # the gateway sidecar's plaintext route to the ledger
    "gateway_admin": 9901,
    "ledger_admin": 9902,
    "console": 8080,
    "gateway_app": 50062,  # the gateway's plaintext port behind its sidecar (MTD/1 edge)
    "agent_admin": 9910,  # --workload-api: the Workload API agent's /status and /metrics
    "agent_b_admin": 9911,  # --domains 2: the second trust domain's agent (its /bundle)
}
RUN_PORTS = tuple(DEFAULT_PORTS)


def local(name: str) -> str:
    """``127.0.0.1:<default port of name>``, e.g. ``local("gateway")``."""
    return f"127.0.0.1:{DEFAULT_PORTS[name]}"


def run_ports() -> dict[str, int]:
    """A free port for each of `mtlsdemo run`'s listeners (tests and tools run a
    mesh beside a user's `make run`, which holds the defaults)."""
    return {name: free_port() for name in RUN_PORTS}


def run_port_flags(ports: dict[str, int]) -> list[str]:
    return [
        f for name, port in ports.items() for f in (f"--{name.replace('_', '-')}-port", str(port))
    ]


def mesh_env(ports: dict[str, int]) -> dict[str, str]:
    """The environment twins with which `break` and `tour` find a run on these ports."""
    return {
        "MTLSDEMO_LEDGER_SIDECAR": f"127.0.0.1:{ports['ledger']}",
        "MTLSDEMO_GATEWAY_ADDR": f"127.0.0.1:{ports['gateway']}",
        "MTLSDEMO_GATEWAY_ADMIN": f"127.0.0.1:{ports['gateway_admin']}",
        "MTLSDEMO_LEDGER_ADMIN": f"127.0.0.1:{ports['ledger_admin']}",
        "MTLSDEMO_GATEWAY_ROUTE": f"127.0.0.1:{ports['route']}",
        "MTLSDEMO_GATEWAY_METRICS": f"127.0.0.1:{ports['gateway_metrics']}",
        "MTLSDEMO_AGENT_ADMIN": f"127.0.0.1:{ports['agent_admin']}",
    }
