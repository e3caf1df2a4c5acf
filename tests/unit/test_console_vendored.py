"""The console's one vendored file is the one recorded in VENDORED.md (source,
licence, checksum), and the page loads exactly that file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "services" / "mtlsdemo" / "console" / "static"


def test_the_vendored_layout_library_is_the_recorded_one() -> None:
    table = (STATIC / "VENDORED.md").read_text()
    rows = re.findall(r"^\| `([^`]+\.js)` \|.*\| `([0-9a-f]{64})` \|$", table, re.MULTILINE)
    assert rows, "VENDORED.md lists no file"
    for name, digest in rows:
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
        assert f'src="/static/{name}"' in (STATIC / "index.html").read_text(), name
    assert (
        "MIT License" in (STATIC / "dagre-LICENSE.txt").read_text()
        or "Permission is hereby granted" in (STATIC / "dagre-LICENSE.txt").read_text()
    )
