"""Log lines a peer cannot forge.

Peers supply text that ends up in logs: certificate names in a refusal's detail,
SPIFFE IDs, alert descriptions. A certificate whose CN holds a newline and ANSI
escapes wrote a forged line into the sidecar's log (the audit's F6). Every log line
of every `mtlsdemo` command goes through one formatter that escapes control
characters in the message (tracebacks, which are ours, keep their lines).
"""

from __future__ import annotations

import logging
import re
import sys

FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character written as an escape: one line, no
    terminal sequences."""
    return _CONTROL.sub(_escape, text)


class PrintableFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
