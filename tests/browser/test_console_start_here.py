"""The README's "Start here", walked as a new user would on a fresh `mtlsdemo run`
(issue 27): each step's command, and what the step promises you should see — the
backticked words of mesh/start_here.py's `see`, the ones the README prints — checked
in the output or on the page. It writes the README's top picture (start-here.png)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mtlsdemo.mesh.start_here import STEPS
from playwright.sync_api import expect
from support.browser import shot
from support.processes import running_mesh
from support.tools import require_binary

pytestmark = pytest.mark.browser

WAIT = 15_000
GATEWAY = "spiffe://mtls-demo.local/ns/default/sa/gateway"
LEDGER = "spiffe://mtls-demo.local/ns/default/sa/ledger"


def promised(step: int) -> list[str]:
    return re.findall(r"`([^`]+)`", STEPS[step - 1].see)


def typed(command: str, cwd: Path, env: dict[str, str], stdin: str = "") -> str:
    env = dict(env, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, input=stdin,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict, dict]]:
    """Step 1: `mtlsdemo run` (what `make run` starts) from nothing, with its traffic."""
    require_binary("chromium")
    root = tmp_path_factory.mktemp("start-here")
    with running_mesh(root, "--traffic-seconds", "1") as (ports, env):
        yield root, ports, env


def test_step_1_make_run_is_up_with_its_edge_and_the_next_steps(fresh) -> None:
    root, _ports, _env = fresh
    log = (root / "run.log").read_text()
    for text in promised(1):
        assert text in log, (text, log[-3000:])
    edges = log.split("== mesh edges", 1)[1]
    assert re.search(rf"gateway-sidecar\s+{GATEWAY}\s+{LEDGER}\s+X25519MLKEM768", edges)
    assert "== start here (README.md)" in log
    for step in STEPS[2:]:
        assert step.command in log.split("== start here", 1)[1]


def test_steps_2_to_4_the_console_the_tour_and_a_break(browser, fresh, shots: Path) -> None:
    root, ports, env = fresh
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # step 2: open the console, click the gateway → ledger edge (on the picture)
        page.goto(f"http://127.0.0.1:{ports['console']}/")
        expect(page.get_by_test_id("live")).to_have_text("live", timeout=WAIT)
        edge = page.locator(
            f"[data-testid=mesh-edge-label][data-client='{GATEWAY}'][data-server='{LEDGER}']"
        )
        edge.click()
        expect(page.get_by_test_id("selected-edge")).to_have_text("gateway → ledger (MTD/1)")
        ladder = page.get_by_test_id("ladder").first
        expect(ladder).to_have_attribute("data-outcome", "success", timeout=WAIT)
        steps = ladder.get_by_test_id("ladder-step").evaluate_all(
            "els => [...new Set(els.map(e => e.dataset.step))]"
        )
        assert steps[:4] == ["hello", "certificate_verify", "key_exchange", "finished"], steps
        sizes = ladder.get_by_test_id("ladder-message").evaluate_all(
            "els => els.map(e => e.textContent)"
        )
        assert all(re.search(r"\(\d+ B\)", s) for s in sizes if "(" in s) and sizes
        panel = page.get_by_test_id("ladder-panel")
        # the other side's certificate, as the sidecar that recorded this view saw it
        seen_as = panel.locator(".note").first.text_content() or ""
        other = GATEWAY if "as the server" in seen_as else LEDGER
        expect(panel.get_by_test_id("peer-certificate")).to_contain_text(other)
        expect(panel.get_by_test_id("checks")).to_contain_text("chain signature verified")
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, shots / "start-here.png")

        # step 3: the tour, Enter for each next step
        tour = typed("mtlsdemo tour", root, env, stdin="\n" * 40)
        for n, name in enumerate(("hello", "certificate verification", "key exchange", "data"), 1):
            assert re.search(rf"^== {n}\. {name}", tour, re.IGNORECASE | re.MULTILINE), (n, tour)

        # step 4: break it, then the console's new Failures row and its refused ladder
        said = typed("mtlsdemo break foreign-ca", root, env)
        for text in promised(4):
            assert text in said, (text, said)
        # the impostor claims the gateway's name (the tour's self-signed CN=gateway,
        # also refused unknown_ca, is a row of its own)
        row = page.locator(
            f"[data-testid=failure-row][data-reason=unknown_ca][data-rejected-by='{LEDGER}']"
            f"[data-claimed='{GATEWAY}']"
        )
        expect(row).to_be_visible(timeout=WAIT)
        row.click()
        verdict = page.get_by_test_id("ladder-verdict")
        expect(verdict).to_have_attribute("data-reason", "unknown_ca")
        expect(verdict).to_contain_text("in step 2")
        expect(page.get_by_test_id("ladder-cross")).to_have_attribute("data-side", "server")
    finally:
        context.close()
    assert errors == [], errors
