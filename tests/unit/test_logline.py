"""A peer-supplied string cannot forge a log line (the audit's F6): every
`mtlsdemo` log line escapes control characters in its message."""

from __future__ import annotations

import subprocess
import sys

from mtlsdemo.logline import printable

FORGED = "CN=evil\n2026-12-02 00:00:00,000 INFO  mtlsdemo: all good\x1b[2K\u2028x"


def test_control_characters_are_escaped_and_text_is_kept() -> None:
    assert printable("spiffe://td/ns/a/sa/b (é)") == "spiffe://td/ns/a/sa/b (é)"
    out = printable(FORGED)
    assert "\n" not in out and "\x1b" not in out and "\u2028" not in out
    assert out == "CN=evil\\x0a2026-12-02 00:00:00,000 INFO  mtlsdemo: all good\\x1b[2K\\u2028x"


def test_the_cli_logging_writes_a_forged_name_on_one_line() -> None:
    code = (
        "import logging; from mtlsdemo.logline import setup_logging; setup_logging('info');"
        f"logging.getLogger('mtlsdemo.sidecar').warning('refused: issuer %s', {FORGED!r})"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "refused: issuer CN=evil\\x0a2026" in lines[0], r.stderr
