"""The way in (issue 27): the README's first section is the numbered path, its
steps are mesh/start_here.py's (what `make run` prints at its end), and the README
stays short enough to be read."""

from __future__ import annotations

import re
from pathlib import Path

from mtlsdemo.addresses import DEFAULT_PORTS, run_ports
from mtlsdemo.mesh.start_here import STEPS, printed

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_readme_opens_with_the_numbered_path() -> None:
    headings = re.findall(r"^## (.+)$", README, re.MULTILINE)
    assert headings[0] == "Start here"
    section = flat(README.split("## Start here\n", 1)[1].split("\n## ", 1)[0])
    at = 0
    for n, step in enumerate(STEPS, 1):
        for text in (f"{n}. **{step.do}**", step.command, f"You should see: {step.see}"):
            found = section.find(flat(text), at)
            assert found >= 0, f"README's Start here lacks, in order: {text!r}"
            at = found
    assert README.index("![") < README.index("## Start here")  # the picture above the fold
    assert len(README.splitlines()) <= 200


def test_make_run_ends_with_the_same_steps() -> None:
    lines = printed(dict(DEFAULT_PORTS), Path("certs"))
    assert [line.split(": ", 1)[-1] for line in lines[1:4]] == [s.command for s in STEPS[1:]]
    assert not any("export" in line for line in lines)  # the defaults need nothing


def test_a_run_on_other_ports_says_how_to_reach_it() -> None:
    ports = run_ports()
    lines = printed(ports, Path("/tmp/elsewhere/certs"))
    export = next(line for line in lines if line.strip().startswith("export "))
    assert f"MTLSDEMO_LEDGER_SIDECAR=127.0.0.1:{ports['ledger']}" in export
    assert "MTLSDEMO_CERTS_DIR=/tmp/elsewhere/certs" in export
    assert f"http://127.0.0.1:{ports['console']}/" in "\n".join(lines)


def test_each_term_is_explained_where_the_readme_first_uses_it() -> None:
    """A newcomer meets these words before any glossary: each first use explains it
    (a parenthesis right after it, or the next sentence for the suite's name)."""
    text = flat(README)
    for term, explained in (
        ("SPIFFE ID", "SPIFFE ID (the workload's name"),
        ("sidecars", "sidecars (a proxy process beside each service"),
        ("ladder", "ladder (the handshake's messages drawn in order"),
        ("X25519MLKEM768-AES-256-GCM", "That name is the cipher suite"),
    ):
        first = text.index(term)
        assert text.find(flat(explained), first) - first < 200, (term, text[first : first + 200])
