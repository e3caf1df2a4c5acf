"""docs/how-to.md "Identities from a Workload API", as written: the `run` line's flags
on free ports, what it says, then the agent's /status line against that mesh."""

from __future__ import annotations

import shlex

import pytest
from support.docblocks import SAYS, blocks, commands
from support.processes import running_mesh
from support.sidecars import http_get

pytestmark = pytest.mark.integration


def test_the_documented_workload_api_mesh_says_what_the_page_says(tmp_path) -> None:
    block, _deployed = blocks(section="Identities from a Workload API")  # then compose, k8s
    (run, run_note), (curl, curl_note) = commands(block)
    argv = shlex.split(run)
    assert argv[:2] == ["mtlsdemo", "run"]
    with running_mesh(tmp_path, *argv[2:], "--console-port", "0") as (ports, _env):
        log = (tmp_path / "run.log").read_text()
        assert SAYS.search(run_note).group(1) in log
        url = shlex.split(curl)[-1]
        assert url == "http://127.0.0.1:9910/status"  # the default --agent-admin-port
        code, body = http_get(ports["agent_admin"], "/status")
        assert code == 200 and SAYS.search(curl_note).group(1) in body.decode()
        assert '"ttl_seconds": 120.0' in body.decode()  # the page's --svid-ttl 2m


def test_the_documented_two_domain_mesh_says_what_the_page_says(tmp_path) -> None:
    (block,) = blocks(section="Two trust domains")
    (run, run_note), (curl, curl_note) = commands(block)
    argv = shlex.split(run)
    assert argv[:2] == ["mtlsdemo", "run"]
    with running_mesh(tmp_path, *argv[2:], "--console-port", "0") as (ports, _env):
        assert SAYS.search(run_note).group(1) in (tmp_path / "run.log").read_text()
        assert shlex.split(curl)[-1] == "http://127.0.0.1:9911/bundle"  # --agent-b-admin-port
        code, body = http_get(ports["agent_b_admin"], "/bundle")
        assert code == 200 and SAYS.search(curl_note).group(1) in body.decode()
