"""A key log: every session's traffic secrets appended to one file, so a capture of
the sidecars' traffic can be decrypted by Wireshark (the MTD/1 dissector) or by hand.

The format is the NSS key log format that browsers write for SSLKEYLOGFILE, with MTD/1
labels. Whoever reads the file reads the traffic it covers: it is off unless asked
for, the file is created readable by its owner only, and the sidecar says it is on at
start-up, in every handshake record and on /status.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mtlsdemo.handshake import TrafficSecrets

log = logging.getLogger(__name__)

WARNING = (
    "KEY LOG ON: every session's traffic secrets are appended to {path}; anyone "
    "with that file decrypts this sidecar's traffic (for captures and teaching only)"
)
HEADER = (
    "# mtlsdemo MTD/1 key log (NSS key log format, MTD labels). Anyone with this file\n"
    "# decrypts the sessions it lists. Open a capture with the dissector:\n"
    "#   tshark -X lua_script:$(mtlsdemo wireshark --print-path) -o mtd.keylog_file:THIS_FILE -r CAPTURE\n"
)


class KeyLogError(OSError):
    """The key log file cannot be opened for appending."""


class KeyLog:
    """An open key log file. Each session's lines go out in one ``write`` on an
    ``O_APPEND`` descriptor, so two sidecars appending to one file never interleave
    a line, and a reader (Wireshark re-reads a growing file) sees whole lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as e:
            raise KeyLogError(f"--keylog {path}: cannot open for appending: {e.strerror}") from None
        if os.fstat(self._fd).st_size == 0:
            os.write(self._fd, HEADER.encode())
        self.sessions = 0

    def write(self, secrets: TrafficSecrets) -> None:
        try:
            os.write(self._fd, secrets.key_log_lines().encode())
        except OSError as e:  # a full disk loses a line, never a session
            log.warning("key log %s: a session's secrets not written: %s", self.path, e.strerror)
            return
        self.sessions += 1

    def close(self) -> None:
        os.close(self._fd)
