"""The documented recipes, run as written: "Break it on purpose" (docs/how-to.md) and
the README's "Try it", each checked against what its comment promises: `# <reason>: the <side> refuses` (that side found that
reason, the other was told), `# ok`, `# says "<text>"` (printed, exit 0) or
`# fails, says "<text>"` (printed, non-zero exit)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mtlsdemo.addresses import mesh_env
from support.docblocks import SAYS, blocks, commands
from support.processes import running_mesh

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REFUSES = re.compile(r"#\s*(\w+): the (client|server) refuses")


def run(cmd: str, cwd: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env_extra)
    # /tmp/evil in the README: a directory of this test's own
    cmd = cmd.replace("/tmp/evil", str(cwd / "evil"))
    return subprocess.run(
        ["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_recipes_do_what_their_comments_say(tmp_path: Path) -> None:
    first = blocks()[0]
    assert run("mtlsdemo certs bootstrap", tmp_path).returncode == 0
    checked = 0
    for cmd, comment in commands(first):
        refuses = REFUSES.search(comment)
        if refuses:
            reason, side = refuses.groups()
            r = run(cmd + " --json", tmp_path)
            assert r.returncode == 1, (cmd, r.stdout, r.stderr)
            errors = {e["role"]: e for e in json.loads(r.stdout)["errors"]}
            other = "server" if side == "client" else "client"
            assert (errors[side]["reason"], errors[side]["origin"]) == (reason, "local"), cmd
            assert (errors[other]["reason"], errors[other]["origin"]) == (
                reason,
                "remote_unverified",
            ), cmd
            checked += 1
            continue
        r = run(cmd, tmp_path)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        says = SAYS.search(comment)
        if says:
            assert says.group(1) in r.stdout, (cmd, r.stdout)
            checked += 1
        elif comment.startswith("# ok"):
            assert "session: MTD/1.2" in r.stdout, (cmd, r.stdout)
            checked += 1
    promises = [
        c for _, c in commands(first) if REFUSES.search(c) or SAYS.search(c) or c.startswith("# ok")
    ]
    assert checked == len(promises) >= 14  # every promise checked, none silently skipped


def test_the_mesh_recipes_against_a_running_mesh(tmp_path: Path) -> None:
    """The second block against `mtlsdemo run` (what `make run` starts), on its own
    free ports: the client reaches it through MTLSDEMO_GATEWAY_ADDR, curl through
    the ledger sidecar's admin port."""
    with running_mesh(tmp_path) as (ports, _env):
        env = mesh_env(ports)  # `break` finds this run through the flags' env twins
        assert run("mtlsdemo client open alice --id alice", tmp_path, **env).returncode == 0
        checked = 0
        for cmd, comment in commands(blocks()[1]):
            cmd = cmd.replace("127.0.0.1:9902", f"127.0.0.1:{ports['ledger_admin']}")
            cmd = cmd.replace("127.0.0.1:50051", f"127.0.0.1:{ports['ledger']}")
            r = run(cmd, tmp_path, **env)
            says = SAYS.search(comment)
            if says:
                assert says.group(1) in r.stdout + r.stderr, (cmd, r.stdout, r.stderr)
                fails = comment.lstrip("# ").startswith("fails")
                assert (r.returncode != 0) == fails, (cmd, r.returncode, r.stdout, r.stderr)
                checked += 1
            else:
                assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        assert checked == 11


def test_the_readme_try_block_against_a_running_mesh(tmp_path: Path) -> None:
    """The README's "Try it", line by line, against `mtlsdemo run` on free ports."""
    (block,) = blocks("README.md", "Try it")
    with running_mesh(tmp_path) as (ports, _env):
        env = mesh_env(ports)
        checked = 0
        for cmd, comment in commands(block):
            cmd = cmd.replace("127.0.0.1:9902", f"127.0.0.1:{ports['ledger_admin']}")
            cmd = cmd.replace("127.0.0.1:50051", f"127.0.0.1:{ports['ledger']}")
            r = run(cmd, tmp_path, **env)
            assert r.returncode == 0, (cmd, r.stdout, r.stderr)
            says = SAYS.search(comment)
            if says:
                assert says.group(1) in r.stdout + r.stderr, (cmd, r.stdout, r.stderr)
                checked += 1
        assert checked == 4 and len(commands(block)) == 9


def test_every_command_in_the_section_is_a_real_one() -> None:
    from mtlsdemo.cli import build_parser

    parser = build_parser()
    for block in [*blocks(), *blocks("README.md", "Try it")]:
        for cmd, _ in commands(block):
            for part in cmd.split("&&"):
                argv = shlex.split(part)
                if argv[0] != "mtlsdemo":
                    continue
                try:
                    parser.parse_args(argv[1:])
                except SystemExit as e:
                    pytest.fail(f"README: {part.strip()!r} does not parse ({e})")
