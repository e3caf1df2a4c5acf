"""`mtlsdemo tour` against a real `mtlsdemo run`: each section's facts are the real
ones, and docs/tls-walkthrough.md is what the tour prints today."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from support.processes import mtlsdemo, running_mesh
from support.tools import require_binary, require_tool

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("tour")
    with running_mesh(root) as (ports, env):
        yield root, ports, {**env, "MTLSDEMO_CERTS_DIR": str(root / "certs")}


def test_each_section_shows_what_really_happened(mesh) -> None:
    require_binary("openssl")
    _root, ports, env = mesh
    r = subprocess.run(
        mtlsdemo("tour", "--non-interactive"), env=env, capture_output=True, text=True, timeout=300
    )
    out = r.stdout
    assert r.returncode == 0 and "Traceback" not in r.stderr, out + r.stderr
    # 1: the suite shown is the one the ledger's sidecar negotiated for that handshake
    shown = out.split("server picks:  MTD/1.2, ", 1)[1].split("\n", 1)[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['ledger_admin']}/status") as s:
        recent = json.loads(s.read())["recent_handshakes"]
    assert shown in {h["suite"] for h in recent if h["outcome"] == "success"}
    # 2: the CA signature really checked, locally, and the stapled status
    assert "verify(signature, hash, CA public key): valid" in out
    assert "✓ stapled status: good for serial" in out
    # 3: the RSA section really used RSA-OAEP key transport, and it decrypted
    assert "RSA-OAEP: ClientKeyExchange carries 256 bytes: a random 48-byte pre-master" in out
    assert "the server decrypted it: ok" in out and "key schedules agree: yes" in out
    # 4: the tampered record fails authentication; the same call at two hops, captured
    assert "one bit flipped:      refused: decrypt_error" in out
    if can_capture():
        assert (
            'a real capture (dumpcap on lo) of one call, GetBalance("alice"), at two hops:' in out
        )
        assert '"alice" appears nowhere' in out and "+ a 5-byte header + a 16-byte tag" in out
    # 5: openssl's self-signed certificate refused by the ledger's sidecar, the CA-signed accepted
    assert "refused by the ledger's sidecar: unknown_ca" in out
    assert "the same CSR signed by the mesh's CA: accepted" in out
    # every section points at what shows it over time
    assert out.count("watch it over time:") == 5
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("== end of the tour. Next: `mtlsdemo break --list`")
    # each next step is a command that exists (the parser takes it)
    import re
    import shlex

    from mtlsdemo.cli import build_parser

    for cmd in re.findall(r"`(mtlsdemo [^`]+)`", last):
        build_parser().parse_args(shlex.split(cmd)[1:])


def can_capture() -> bool:
    """Step 4 captures for real where dumpcap may capture on lo (root here; CI is)."""
    import os
    import shutil

    return shutil.which("dumpcap") is not None and os.geteuid() == 0


def test_the_walkthrough_document_is_current(tmp_path: Path) -> None:
    require_binary("openssl")
    # the document shows step 4's real capture
    require_tool("capture", can_capture(), "step 4's capture needs dumpcap and root here")
    sys.path.insert(0, str(ROOT / "tools"))
    from gen_walkthrough import DOC, normalize, tour_markdown

    fresh = normalize(tour_markdown(tmp_path))
    committed = normalize(DOC.read_text())
    assert fresh == committed, (
        "docs/tls-walkthrough.md is stale: run `make walkthrough` and commit it"
    )


def test_tour_without_a_mesh_is_one_line() -> None:
    r = subprocess.run(
        mtlsdemo("tour", "--non-interactive", "--ledger-admin", "127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: tour: no mesh at")
    assert "for a run on other ports, the `export MTLSDEMO_…` line it printed" in r.stderr
    assert r.stderr.count("\n") == 1


class TourOnATerminal:
    """`mtlsdemo tour` on a pseudo-terminal (it pauses there between steps): what it
    printed so far, and keys typed at it."""

    def __init__(self, env: dict[str, str]) -> None:
        import os
        import pty

        self.leader, follower = pty.openpty()
        self.proc = subprocess.Popen(
            mtlsdemo("tour"), stdin=follower, stdout=follower, stderr=follower, env=env
        )
        os.close(follower)
        self.seen = bytearray()

    def read(self) -> bytes:
        import contextlib
        import os
        import select

        if select.select([self.leader], [], [], 0.2)[0]:
            with contextlib.suppress(OSError):  # the child closed the terminal
                self.seen.extend(os.read(self.leader, 65536))
        return bytes(self.seen)

    def type(self, keys: bytes) -> None:
        import os

        os.write(self.leader, keys)

    def close(self) -> None:
        import os

        self.proc.kill()
        os.close(self.leader)


def test_ctrl_d_at_a_pause_ends_the_interactive_tour_cleanly(mesh) -> None:
    """On a terminal the tour pauses between steps; Ctrl-D there printed an EOFError
    traceback. Now it ends with one line and exit 0."""
    from support.processes import wait_for

    tour = TourOnATerminal(mesh[2])
    try:
        wait_for(
            lambda: b"Ctrl-D to stop" in tour.read(), timeout=60, what="the tour's first pause"
        )
        tour.type(b"\x04")  # Ctrl-D: end of input on the terminal
        assert tour.proc.wait(timeout=60) == 0
        wait_for(lambda: b"tour ended" in tour.read(), timeout=10, what="the closing line")
        assert b"Traceback" not in tour.seen and b"EOFError" not in tour.seen
    finally:
        tour.close()


def test_the_interactive_tour_ends_with_a_closing_line_and_no_last_pause(mesh) -> None:
    from support.processes import wait_for

    require_binary("openssl")
    tour = TourOnATerminal(mesh[2])
    try:
        for n in range(1, 5):  # a pause after each of the first four steps
            wait_for(
                lambda n=n: tour.read().count(b"Enter for the next step") == n,
                timeout=120,
                what=f"pause {n}",
            )
            tour.type(b"\n")
        wait_for(lambda: b"== end of the tour" in tour.read(), timeout=120, what="the closing line")
        assert tour.proc.wait(timeout=60) == 0
        tour.read()
        assert tour.seen.count(b"Enter for the next step") == 4, bytes(tour.seen[-500:])
    finally:
        tour.close()


@pytest.mark.parametrize(
    ("port", "words"),
    [
        ("gateway", "a TLS or gRPC port"),  # gRPC mTLS: it closes on an MTD/1 hello
        ("console", "this port speaks HTTP"),
        ("ledger_admin", "this port speaks HTTP"),
    ],
)
def test_probing_a_port_that_is_no_sidecar_names_what_it_is(mesh, port: str, words: str) -> None:
    """`handshake --connect` to the first address `make run` prints (the gateway) said
    only `truncated`, and to the console `unknown record type 72`; now the failure
    comes with what the port probably is and where the sidecar is."""
    root, ports, env = mesh
    r = subprocess.run(
        mtlsdemo(
            "handshake", "--connect", f"127.0.0.1:{ports[port]}", "--certs-dir", str(root / "certs")
        ),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out
    # the hint, with its continuation lines (the trace wraps at 100 columns)
    hint = re.findall(r"^ *hint: .*(?:\n {5,}\S.*)*", out, re.MULTILINE)
    assert len(hint) == 1, out
    said = " ".join(hint[0].split())
    assert words in said and "127.0.0.1:50051" in said, out
