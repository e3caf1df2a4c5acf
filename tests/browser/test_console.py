"""The mesh console in a real browser (Playwright driving Debian's Chromium)
against a real `mtlsdemo run`: the live mesh, ladders, a failure provoked from
outside, the in-memory handshake, every break button, and a sidecar restart.

Screenshots land in $MTLSDEMO_SCREENSHOTS (`make screenshots`: docs/screenshots)
or in the test's temp dir."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mtlsdemo.addresses import free_port
from mtlsdemo.breaking.catalog import REASONS
from mtlsdemo.breaking.scenarios import crafted
from mtlsdemo.endpoint.dial import handshake
from mtlsdemo.endpoint.identity import identity_config
from mtlsdemo.mesh.client import LocalMesh, MeshConfig
from mtlsdemo.pki.errors import PkiError
from playwright.sync_api import Browser, expect
from playwright.sync_api import Error as PlaywrightError
from support.browser import shot
from support.processes import running_mesh, wait_for
from support.tools import require_binary

pytestmark = pytest.mark.browser

GATEWAY = "spiffe://mtls-demo.local/ns/default/sa/gateway"
LEDGER = "spiffe://mtls-demo.local/ns/default/sa/ledger"
CLI = "spiffe://mtls-demo.local/ns/default/sa/cli"
# each break button: the reason its report must name (the catalog's, which
# `break --list` turns into the step it breaks)
BREAK_REASONS = REASONS
WAIT = 15_000  # ms: Playwright waits on the condition, up to this
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    require_binary("chromium")
    root = tmp_path_factory.mktemp("console")
    with running_mesh(root) as (ports, env):
        # one call as the README's first "Try it" line makes: the cli joins the picture
        subprocess.run(
            [sys.executable, "-m", "mtlsdemo", "client", "open", "alice", "--id", "alice"],
            cwd=root, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        yield root, ports


@pytest.fixture
def console(page, mesh):
    """The page, loaded and live; fails the test on any error the page logs."""
    _root, ports = mesh
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(WAIT)
    page.goto(f"http://127.0.0.1:{ports['console']}/")
    expect(page.get_by_test_id("live")).to_have_text("live")
    yield page
    assert errors == [], errors


def edge_row(page, client: str, server: str):
    return page.locator(
        f"[data-testid=edge-row][data-client='{client}'][data-server='{server}'][data-path='MTD/1']"
    )


def test_the_page_shows_the_live_mesh_with_identities_and_suite(console, shots: Path) -> None:
    page = console
    row = edge_row(page, GATEWAY, LEDGER)
    expect(row).to_contain_text("X25519MLKEM768-AES-256-GCM")
    # the default offer is the hybrid: the edge says so in words (issue 26)
    expect(row.get_by_test_id("edge-kx")).to_have_text("quantum-safe key exchange")
    # ECDSA identities: a future quantum computer could forge their signatures
    expect(row.get_by_test_id("edge-ids")).to_have_text("classic identities")
    expect(row.get_by_test_id("edge-health")).to_contain_text("healthy")
    for identity in (GATEWAY, LEDGER, CLI):  # the cli too: the README's picture has it
        expect(page.locator(f"[data-testid=mesh-node][data-id='{identity}']")).to_be_visible()
    expect(
        page.locator(f"[data-testid=mesh-edge][data-client='{GATEWAY}'][data-server='{LEDGER}']")
    ).to_have_attribute("data-health", "healthy")
    expect(page.locator("[data-testid=source][data-up=false]")).to_have_count(0)
    shot(page.locator("#mesh-section"), shots / "mesh.png")


def test_a_ladder_shows_the_four_steps_in_order(console, shots: Path) -> None:
    page = console
    edge_row(page, GATEWAY, LEDGER).click()
    # a full handshake (the first to this peer; later ones may resume)
    page.locator(
        "[data-testid=handshake-item][data-resumed=false][data-outcome=success]"
    ).last.click()
    ladder = page.get_by_test_id("ladder").first
    expect(ladder).to_have_attribute("data-outcome", "success")
    steps = ladder.get_by_test_id("ladder-step").evaluate_all("els => els.map(e => e.dataset.step)")
    first_seen = list(dict.fromkeys(steps))
    assert first_seen == ["hello", "certificate_verify", "key_exchange", "finished", "data"], steps
    names = ladder.get_by_test_id("ladder-message").evaluate_all(
        "els => els.map(e => e.dataset.name)"
    )
    assert names[0] == "CLIENT_HELLO" and names.count("FINISHED") == 2, names
    # sizes are seen: arrow weight by bytes, the handshake's total, the interleaving said
    weights = ladder.locator("[data-testid=ladder-message] line").evaluate_all(
        "els => els.map(e => [e.closest('g').dataset.name, +e.getAttribute('data-bytes'), +e.getAttribute('stroke-width')])"
    )
    by_name = {n: (b, w) for n, b, w in weights if b}
    assert by_name["SERVER_KEY_SHARE"][1] > by_name["FINISHED"][1], by_name  # 1,224 B vs 36 B
    total = int(ladder.get_by_test_id("ladder-total").get_attribute("data-bytes"))
    assert total == sum(b for _n, b, _w in weights), (total, weights)
    expect(ladder.get_by_test_id("ladder-total")).to_contain_text("KB on the wire")
    expect(ladder.get_by_test_id("ladder-interleave")).to_contain_text("steps 2 and 3 interleave")
    expect(page.get_by_test_id("ladder-verdict")).to_contain_text("both sides verified each other")
    expect(page.get_by_test_id("ladder-pq")).to_contain_text("ML-KEM-768")  # the bigger messages
    panel = page.get_by_test_id("ladder-panel")
    expect(panel.get_by_test_id("peer-certificate")).to_contain_text("stapled status")
    shot(page.locator("#handshakes-section"), shots / "ladder.png")
    shot(page.locator("#certs-section"), shots / "certificates.png")


def test_a_resumed_handshake_shows_its_short_ladder(console, mesh) -> None:
    """A new tunnel through the gateway's sidecar resumes from the ticket of the
    first handshake: five messages, no certificate, and the verdict says so."""
    page = console
    _root, ports = mesh
    edge_row(page, GATEWAY, LEDGER).click()
    # a tunnel that stays open until its handshake is on the page (closing it
    # earlier would end the handshake with it)
    with socket.create_connection(("127.0.0.1", ports["route"]), timeout=10):
        item = page.locator("[data-testid=handshake-item][data-resumed=true]").first
        expect(item).to_be_visible()
    item.click()
    ladder = page.get_by_test_id("ladder").first
    names = ladder.get_by_test_id("ladder-message").evaluate_all(
        "els => els.map(e => e.dataset.name)"
    )
    handshake = [n for n in names if n.isupper()]  # (then the data row)
    assert handshake == ["CLIENT_HELLO", "SERVER_HELLO", "SERVER_KEY_SHARE", "FINISHED", "FINISHED"]
    expect(page.get_by_test_id("ladder-verdict")).to_contain_text("resumed from a session ticket")
    expect(page.get_by_test_id("checks")).to_contain_text("forward secrecy")
    # and the edge counts it
    expect(edge_row(page, GATEWAY, LEDGER).get_by_test_id("edge-resumed")).to_contain_text(
        "resumed"
    )


def test_a_foreign_ca_from_outside_appears_as_a_failed_ladder(console, mesh, shots: Path) -> None:
    page = console
    root, ports = mesh
    local = LocalMesh(MeshConfig(certs_dir=root / "certs", ledger=("127.0.0.1", ports["ledger"])))
    foreign = crafted(local, root / "impostor", "gateway", foreign=True)
    attempt = handshake("127.0.0.1", ports["ledger"], identity_config(foreign, peer_ids=(LEDGER,)))
    attempt.close()
    assert attempt.error is not None and attempt.error.reason.value == "unknown_ca"
    row = page.locator(
        f"[data-testid=failure-row][data-reason=unknown_ca][data-rejected-by='{LEDGER}']"
        f"[data-claimed='{GATEWAY}']"
    )
    expect(row).to_have_attribute("data-origin", "local")
    expect(row).to_contain_text("2 certificate verification")
    # the impostor is not verified: the row says what its certificate claims
    expect(row.get_by_test_id("failure-rejected")).to_contain_text(
        "claims spiffe://mtls-demo.local/ns/default/sa/gateway — not verified"
    )
    row.click()
    verdict = page.get_by_test_id("ladder-verdict")
    expect(verdict).to_have_attribute("data-reason", "unknown_ca")
    expect(verdict).to_contain_text("rejected by ledger (the server) in step 2")
    expect(page.get_by_test_id("selected-edge")).to_have_text("unverified peer → ledger (MTD/1)")
    expect(page.get_by_test_id("ladder-cross")).to_have_attribute("data-side", "server")
    # the ✗ in the band of the step that failed (2), not in the alert's row
    expect(page.get_by_test_id("ladder-cross")).to_have_attribute("data-step", "certificate_verify")
    shot(page.locator("#handshakes-section"), shots / "ladder-failed.png")


def test_the_in_memory_handshake_provokes_the_chosen_failure(console) -> None:
    page = console
    page.get_by_test_id("try-key-type").select_option("rsa-2048")
    page.get_by_test_id("try-suite").select_option("RSA-OAEP-AES-256-GCM")
    page.get_by_test_id("try-provoke").select_option("wrong-identity")
    page.get_by_test_id("try-run").click()
    expect(page.get_by_test_id("try-result")).to_contain_text("identity_mismatch")
    verdict = page.get_by_test_id("ladder-verdict")
    expect(verdict).to_have_attribute("data-reason", "identity_mismatch")
    expect(verdict).to_contain_text("rejected by ledger (the server)")
    expect(page.get_by_test_id("handshake-item")).to_have_count(2)  # both sides' views
    # the client's view: it verified the server fully (each check listed), then was refused
    page.locator("[data-testid=handshake-item]").filter(has_text="(client)").click()
    passed = page.get_by_test_id("ladder-passed")
    expect(passed).to_contain_text(
        "this side's checks of the server that passed before the refusal:"
    )
    expect(passed).to_contain_text("✓ chain signature verified up to trusted root")
    # the server's view: what held before the one check that failed (identity)
    page.locator("[data-testid=handshake-item]").filter(has_text="(server)").click()
    passed = page.get_by_test_id("ladder-passed")
    expect(passed).to_contain_text("that passed before the one that failed:")
    expect(passed).to_contain_text("✓ CertificateVerify")


def test_the_in_memory_handshake_downloads_as_a_pcap_and_its_key_log(
    console, tmp_path: Path
) -> None:
    page = console
    page.get_by_test_id("try-key-type").select_option("ecdsa-p256")
    page.get_by_test_id("try-provoke").select_option("none")
    page.get_by_test_id("try-run").click()
    expect(page.get_by_test_id("try-result")).to_contain_text("success")
    with page.expect_download() as got:
        page.get_by_test_id("try-pcap").click()
    pcap = tmp_path / got.value.suggested_filename
    got.value.save_as(pcap)
    assert pcap.name == "mtlsdemo-in-memory.pcap" and pcap.read_bytes()[:4] == bytes.fromhex(
        "d4c3b2a1"
    )
    with page.expect_download() as got:
        page.get_by_test_id("try-keys").click()
    keys = tmp_path / got.value.suggested_filename
    got.value.save_as(keys)
    assert keys.read_text().startswith("MTD_CLIENT_TRAFFIC_SECRET_0 ")
    expect(page.get_by_test_id("try-capture")).to_contain_text(
        "mtd.keylog_file:mtlsdemo-in-memory.keys"
    )


def test_an_in_memory_ladder_message_opens_its_bytes_exactly(console) -> None:
    """The byte view: each labelled run where the encoder joined it, no gap, no overlap,
    the total the ladder's arrow says."""
    page = console
    page.get_by_test_id("try-key-type").select_option("ecdsa-p256")
    page.get_by_test_id("try-provoke").select_option("none")
    page.get_by_test_id("try-run").click()
    expect(page.get_by_test_id("try-result")).to_contain_text("success")
    for name in ("SERVER_KEY_SHARE", "CERTIFICATE", "CLIENT_HELLO", "FINISHED"):
        opens_its_bytes(page, "[data-testid=ladder-message]", name)
    expect(page.get_by_test_id("byte-view")).to_contain_text("finished.verify_data")


def opens_its_bytes(page, messages: str, name: str) -> None:
    """Clicking the first ``name`` message opens runs that cover it: no gap, no overlap,
    the total the ladder's arrow says."""
    message = page.locator(f"{messages}[data-name={name}]").first
    size = int(message.locator("line").get_attribute("data-bytes"))
    message.click()
    view = page.get_by_test_id("byte-view")
    expect(view).to_have_attribute("data-message", name)
    runs = view.get_by_test_id("byte-run").evaluate_all(
        "els => els.map(e => [e.dataset.name, +e.dataset.offset, +e.dataset.size])"
    )
    end = 0
    for run, offset, length in runs:
        assert offset == end, (name, run, offset, end)
        end = offset + length
    assert end == size == int(view.get_attribute("data-total")), (name, end, size)


def test_a_live_ladder_message_opens_its_bytes_as_the_sidecar_saw_them(console) -> None:
    """A live handshake's message (the gateway -> ledger edge, journaled by a sidecar):
    the byte view reads its bytes from that sidecar, cut into runs that cover it."""
    page = console
    edge_row(page, GATEWAY, LEDGER).click()
    # a full handshake (the first to this peer; later ones may resume: no certificate)
    page.locator(
        "[data-testid=handshake-item][data-resumed=false][data-outcome=success]"
    ).last.click()
    expect(page.get_by_test_id("ladder").first).to_have_attribute("data-outcome", "success")
    for name in ("CERTIFICATE", "CLIENT_KEY_EXCHANGE"):
        opens_its_bytes(page, "#ladder [data-testid=ladder-message]", name)
    expect(page.get_by_test_id("byte-view")).to_contain_text("x25519_public_key")


LADDER_SIZE = """() => {
  const svg = document.querySelector("[data-testid=ladder] svg") || document.querySelector("#ladder svg");
  const label = svg.querySelector("text");
  return { width: svg.getBoundingClientRect().width,
           label: parseFloat(getComputedStyle(label).fontSize) * svg.getBoundingClientRect().width / svg.viewBox.baseVal.width };
}"""


def test_a_break_report_leaves_the_ladder_its_size(browser, mesh) -> None:
    _root, ports = mesh
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"http://127.0.0.1:{ports['console']}/")
    expect(page.get_by_test_id("live")).to_have_text("live", timeout=WAIT)
    edge_row(page, GATEWAY, LEDGER).click()
    expect(page.get_by_test_id("ladder").first).to_be_visible()
    before = page.evaluate(LADDER_SIZE)
    page.locator("[data-testid=break-button][data-scenario='foreign-ca']").click()
    report = page.get_by_test_id("break-report")
    expect(report).to_have_attribute("data-state", "done", timeout=120_000)
    edge_row(page, GATEWAY, LEDGER).click()
    expect(page.get_by_test_id("ladder").first).to_be_visible()
    after = page.evaluate(LADDER_SIZE)
    assert after["width"] >= 0.95 * before["width"], (before, after)
    assert after["label"] >= 10, after  # px on screen (it was ~7 with the report beside it)


def test_each_break_button_produces_its_reason(console, shots: Path) -> None:
    page = console
    report = page.get_by_test_id("break-report")
    for name, reason in BREAK_REASONS.items():
        page.locator(f"[data-testid=break-button][data-scenario='{name}']").click()
        expect(report).to_have_attribute("data-scenario", name)
        expect(report).to_have_attribute("data-state", "done", timeout=120_000)
        expect(report).to_have_attribute("data-ok", "true")
        expect(report).to_contain_text(reason)
    for reason in ("certificate_revoked", "status_stale", "bad_signature", "decrypt_error"):
        expect(
            page.locator(f"[data-testid=failure-row][data-reason={reason}]").first
        ).to_be_visible()
    shot(page.locator("#failures-section"), shots / "failures.png")


def test_a_console_without_the_ca_shows_the_command_that_breaks_the_mesh(browser, mesh) -> None:
    """The compose console's shape: no --allow-break, a --break-command; each button
    says the command that runs its scenario from the host, and runs nothing itself."""
    import urllib.request

    _root, ports = mesh
    port = free_port()
    console = subprocess.Popen(
        [sys.executable, "-m", "mtlsdemo", "console", "--listen", f"127.0.0.1:{port}",
         "--sidecar-admin", f"127.0.0.1:{ports['gateway_admin']}",
         "--sidecar-admin", f"127.0.0.1:{ports['ledger_admin']}",
         "--break-command", "mtlsdemo break --compose mtlsdemo {scenario}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/options", timeout=2),
            timeout=30,
            ignore=(OSError,),
            what="the second console to answer",
        )
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.get_by_test_id("live")).to_have_text("live", timeout=WAIT)
        expect(page.locator("#break-h")).to_contain_text("holds no CA key")
        page.locator("[data-testid=break-button][data-scenario='revoked']").click()
        expect(page.get_by_test_id("break-command")).to_have_text(
            "mtlsdemo break --compose mtlsdemo revoked"
        )
        expect(page.get_by_test_id("break-report")).to_have_text("")  # nothing ran here
    finally:
        console.terminate()
        console.wait(timeout=30)


def _sidecar(identity: Path, inbound: int, admin: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mtlsdemo", "sidecar", "--name", "ledger-sidecar",
         "--identity-dir", str(identity), "--inbound-listen", f"127.0.0.1:{inbound}",
         "--inbound-target", f"127.0.0.1:{free_port()}", "--allow-id", GATEWAY,
         "--admin-listen", f"127.0.0.1:{admin}"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_the_page_keeps_working_when_a_sidecar_restarts(
    page, pki_dir: Path, tmp_path: Path
) -> None:
    require_binary("chromium")
    inbound, admin, port = free_port(), free_port(), free_port()
    log = tmp_path / "processes.log"
    sidecar = _sidecar(pki_dir / "ledger", inbound, admin, log)
    console = subprocess.Popen(
        [sys.executable, "-m", "mtlsdemo", "console", "--listen", f"127.0.0.1:{port}",
         "--sidecar-admin", f"127.0.0.1:{admin}", "--metrics", f"127.0.0.1:{free_port()}"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    gateway = identity_config(pki_dir / "gateway", peer_ids=(LEDGER,))

    def one_handshake() -> None:
        def ok() -> bool:
            attempt = handshake("127.0.0.1", inbound, gateway, timeout=2)
            attempt.close()
            return attempt.error is None

        # refused until the (re)started sidecar listens: the dialer says so as a PkiError
        wait_for(ok, timeout=20, what="a handshake with the sidecar", ignore=(OSError, PkiError))

    try:
        page.set_default_timeout(WAIT)
        wait_for(
            lambda: page.goto(f"http://127.0.0.1:{port}/"),
            timeout=20,
            what="the console to answer",
            ignore=(PlaywrightError,),
            check=lambda: console.poll() is None or pytest.fail(log.read_text()),
        )
        one_handshake()
        row = edge_row(page, GATEWAY, LEDGER)
        expect(row.get_by_test_id("edge-ok")).to_have_text("1")
        sidecar.send_signal(signal.SIGKILL)
        sidecar.wait(10)
        expect(page.locator("[data-testid=source][data-up=false]")).to_have_count(2)  # + metrics
        sidecar = _sidecar(pki_dir / "ledger", inbound, admin, log)
        one_handshake()
        one_handshake()
        expect(row.get_by_test_id("edge-ok")).to_have_text("2")  # the new process's count
        row.click()
        # the restarted sidecar's handshakes and the one from before it died
        expect(page.get_by_test_id("handshake-item")).to_have_count(3)
        expect(page.get_by_test_id("live")).to_have_text("live")
    finally:
        for proc in (console, sidecar):
            proc.terminate()
            proc.wait(15)


def revoked_serials(root: Path) -> int:
    from cryptography import x509

    crl = root / "certs" / "ca" / "crl.pem"
    return len(list(x509.load_pem_x509_crl(crl.read_bytes()))) if crl.exists() else 0


def test_a_page_on_another_origin_cannot_drive_the_console(
    browser: Browser, mesh, tmp_path: Path
) -> None:
    """The audit's F1: a website made the browser run `break revoked` (a form post or a
    no-cors fetch with text/plain needs no preflight). Both are refused now, the
    CRL is untouched, and curl-style requests with a foreign Host or Origin get 403."""
    import http.server
    import threading
    import urllib.error
    import urllib.request

    root, ports = mesh
    console_url = f"http://127.0.0.1:{ports['console']}"
    before = revoked_serials(root)
    (tmp_path / "index.html").write_text(
        f"""<!doctype html><html><body>
<form id="f" method="POST" action="{console_url}/api/break/revoked" enctype="text/plain">
<input name="x" value="y"></form>
<script>
fetch("{console_url}/api/break/revoked", {{method: "POST", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: "x"}})
  .catch(() => null)
  .then(() => document.getElementById("f").submit());
</script></body></html>"""
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k) -> None:
            super().__init__(*a, directory=str(tmp_path), **k)

        def log_message(self, *_a) -> None:
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Quiet)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        # the form's navigation lands on the console's answer: a refusal that says why
        page.wait_for_url(f"{console_url}/api/break/revoked", timeout=WAIT)
        expect(page.locator("body")).to_contain_text("another website")
    finally:
        context.close()
        evil.shutdown()
    assert revoked_serials(root) == before

    def status(method: str, path: str, **headers: str) -> int:
        req = urllib.request.Request(console_url + path, method=method, headers=headers)
        if method == "POST":
            req.data = b"x"
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    evil_origin = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    assert status("POST", "/api/break/revoked", **evil_origin) == 403
    assert status("GET", "/api/mesh", Host="evil.example") == 403  # DNS rebinding
    assert status("GET", "/api/mesh") == 200
    assert revoked_serials(root) == before
