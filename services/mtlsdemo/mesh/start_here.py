"""The way in (issue 27): the README's numbered "Start here" and what `make run`
prints when it is up are these steps, each with what you should see.
tests/unit/test_start_here.py holds the README to them; the browser tier walks them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtlsdemo.addresses import DEFAULT_PORTS, mesh_env


@dataclass(frozen=True)
class Step:
    do: str  # what to do, in words
    command: str  # what to type (or open)
    see: str  # what you should see


CONSOLE = f"http://127.0.0.1:{DEFAULT_PORTS['console']}/"
STEPS = (
    Step(
        "Start the mesh",
        "make run",
        "`== mtlsdemo is up`, then the mesh edges: gateway → ledger on "
        "`X25519MLKEM768-AES-256-GCM`, ok on both sidecars",
    ),
    Step(
        "Open the console and click the gateway → ledger edge",
        CONSOLE,
        "the edge's handshakes and the first one's ladder: the four steps (hello, certificate "
        "verification, key exchange, finished → encrypted data) with every message's size, the certificate the "
        "other side presented and each check that passed",
    ),
    Step(
        "Take the tour, in another terminal (`. .venv/bin/activate` first)",
        "mtlsdemo tour",
        "the four steps of TLS on this mesh, one at a time (Enter for the next): the live "
        "command, its real output, and what the usual explanation gets wrong",
    ),
    Step(
        "Break it on purpose",
        "mtlsdemo break foreign-ca",
        "`the ledger's sidecar refused the impostor: unknown_ca`, the counter it raised, then "
        "`== foreign-ca: as described; the mesh is healthy again`; in the console, a new row in "
        "Failures: click it for the refused ladder, its ✗ in step 2",
    ),
)
NEXT = "more: mtlsdemo break --list · docs/getting-started.md · docs/troubleshooting.md"


def printed(ports: dict[str, int], certs: Path, transport: str = "tls") -> list[str]:
    """What `mtlsdemo run` ends with: the steps after the one just taken, with the
    address of this run's console and, when its ports, certs or caller transport
    are not the defaults, the environment that points `tour`, `break` and
    `client` at it."""
    console = f"http://127.0.0.1:{ports['console']}/"
    lines = ["== start here (README.md): in another terminal, `. .venv/bin/activate` first"]
    env = {k: v for k, v in mesh_env(ports).items() if v != mesh_env(DEFAULT_PORTS)[k]}
    if certs != Path("certs"):
        env["MTLSDEMO_CERTS_DIR"] = str(certs)
    if transport == "mtd":  # the gateway behind its sidecar: callers bring theirs
        env["MTLSDEMO_TRANSPORT"] = "mtd"
    if env:
        lines.append("   this run is not on the defaults: first")
        lines.append("     export " + " ".join(f"{k}={v}" for k, v in env.items()))
    for n, step in enumerate(STEPS[1:], 2):
        if step.command == CONSOLE and not ports["console"]:
            lines.append(f"   {n}. (no console: this run has --console-port 0)")
            continue
        command = console if step.command == CONSOLE else step.command
        lines.append(f"   {n}. {step.do.split(',')[0].split(' (')[0].lower()}: {command}")
    lines.append(f"   {NEXT}")
    return lines
