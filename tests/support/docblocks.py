"""The command blocks of the docs, as tests run them: a moved section moves its test."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAYS = re.compile(r'#.*?says "([^"]+)"')


def blocks(page: str = "docs/how-to.md", section: str = "Break it on purpose") -> list[list[str]]:
    """The fenced blocks of a section of a page (a moved section moves its test)."""
    text = (ROOT / page).read_text()
    part = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [b.split("```", 1)[0].splitlines() for b in part.split("```\n")[1::2]]


def commands(lines: list[str]) -> list[tuple[str, str]]:
    """(command, comment) for every line that runs something."""
    out = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cmd, _, comment = line.partition("#")
        out.append((cmd.strip(), "#" + comment if comment else ""))
    return out
