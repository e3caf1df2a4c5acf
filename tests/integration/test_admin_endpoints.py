"""The sidecar's admin port on aiohttp: the probes' and scrapes' endpoints answer
as before, and what the console reads — /certificates, /handshakes and the live
/events — carries the whole ladder, failures included, and no secret."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from pathlib import Path

import pytest
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap
from support.apps import EchoServer
from support.identities import GATEWAY_ID, LEDGER_ID
from support.processes import wait_for
from support.sidecars import Mesh, http_get

pytestmark = pytest.mark.integration


@pytest.fixture
def mesh(tmp_path: Path):
    certs = tmp_path / "certs"
    bootstrap(BootstrapRequest(out=certs, services=("gateway", "ledger", "cli")))
    echo = EchoServer()
    m = Mesh(tmp_path, certs, echo.port)
    yield m, certs
    m.stop()
    echo.close()


def call(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"ping")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(16) == b"ping"


def test_probe_and_scrape_endpoints_answer_as_before(mesh) -> None:
    m, _ = mesh
    port = m.server.admin
    assert http_get(port, "/healthz") == (200, b"ok\n")
    code, body = http_get(port, "/readyz")
    assert code == 200 and body.endswith(b"\n")
    code, body = http_get(port, "/metrics")
    assert code == 200 and b"mtls_handshakes_total" in body
    status = json.loads(http_get(port, "/status")[1])
    assert status["identity"] == LEDGER_ID and "recent_handshakes" in status
    req = urllib.request.Request(f"http://127.0.0.1:{port}/status", method="HEAD")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200 and r.read() == b""
    assert http_get(port, "/nosuch")[0] == 404
    assert "/handshakes" in json.loads(http_get(port, "/")[1])["endpoints"]


def test_handshakes_carry_the_ladder_and_the_peer_certificate(mesh, other_pki_dir: Path) -> None:
    m, _ = mesh
    call(m.route)
    docs = wait_for(
        lambda: json.loads(http_get(m.server.admin, "/handshakes")[1])["handshakes"],
        what="a handshake in the ledger side's ring",
    )
    (d,) = docs
    assert (d["client"], d["server"], d["outcome"], d["kind"]) == (
        GATEWAY_ID,
        LEDGER_ID,
        "success",
        "handshake",
    )
    assert [x["name"] for x in d["messages"]][:2] == ["CLIENT_HELLO", "SERVER_HELLO"]
    assert d["messages"][-1] == {**d["messages"][-1], "direction": "send", "name": "FINISHED"}
    assert set(d["phases_ms"]) == {"hello", "certificate_verify", "key_exchange", "finished"}
    assert d["peer_certificates"][0]["identity"] == GATEWAY_ID
    assert d["peer_status"]["status"] == "good"
    assert any("stapled status: good" in c for c in d["checks"])
    text = json.dumps(d)
    assert "PRIVATE" not in text and "secret" not in text.lower()
    certs = json.loads(http_get(m.server.admin, "/certificates")[1])
    assert certs["identity"] == LEDGER_ID and certs["rollover"]["stage"] == "steady"
    assert (
        certs["chain"][0]["key"] == "EC secp256r1" and certs["stapled_status"]["status"] == "good"
    )
    assert len(certs["trust_bundle"]) == 1 and certs["trust_bundle"][0]["is_ca"]
    failures = json.loads(http_get(m.server.admin, "/handshakes?failures=1")[1])["handshakes"]
    assert failures == []
    assert http_get(m.server.admin, "/handshakes?since=x")[0] == 400
    # the byte view: every message of that handshake as it crossed, the ladder's sizes
    raw = json.loads(http_get(m.server.admin, f"/handshake-bytes?id={d['id']}")[1])
    assert raw["role"] == "server"
    assert [(x["direction"], x["name"], len(x["hex"]) // 2) for x in raw["messages"]] == [
        (x["direction"], x["name"], x["size"]) for x in d["messages"]
    ]
    hello = bytes.fromhex(raw["messages"][0]["hex"])
    assert hello[0] == 1 and int.from_bytes(hello[1:4], "big") == len(hello) - 4  # ClientHello
    assert http_get(m.server.admin, "/handshake-bytes?id=x")[0] == 400
    assert http_get(m.server.admin, "/handshake-bytes?id=999999")[0] == 404


def test_events_stream_each_handshake_as_it_ends(mesh) -> None:
    m, _ = mesh
    got: list[dict] = []

    def follow() -> None:
        url = f"http://127.0.0.1:{m.server.admin}/events"
        with urllib.request.urlopen(url, timeout=20) as r:
            event = ""
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    got.append({"event": event, **json.loads(line[5:])})
                    if event == "handshake":
                        return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    wait_for(lambda: got, what="the hello event")
    assert got[0]["event"] == "hello" and got[0]["identity"] == LEDGER_ID
    call(m.route)
    t.join(20)
    assert got[-1]["event"] == "handshake" and got[-1]["outcome"] == "success"
    # resuming with ?since= the last id seen (of this instance) skips what was seen
    instance = got[0]["instance"]
    since = got[-1]["id"]
    url = f"/handshakes?since={since}"
    assert json.loads(http_get(m.server.admin, url)[1])["handshakes"] == []
    assert json.loads(http_get(m.server.admin, "/certificates")[1])["instance"] == instance


def documented(section: str) -> set[str]:
    """The paths in the first column of a table of docs/reference/admin.md."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "admin.md").read_text()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return {m.group(1).split(" ")[-1] for m in re.finditer(r"^\| `([^`]+)` \|", part, re.MULTILINE)}


def test_the_endpoint_reference_lists_exactly_what_is_served(mesh, tmp_path: Path) -> None:
    """docs/reference/admin.md against the running sidecar's own list and the
    console's routes: a path added or dropped in either fails here."""
    from mtlsdemo.console.app import Console
    from mtlsdemo.console.config import ConsoleConfig

    m, _ = mesh
    served = set(json.loads(http_get(m.server.admin, "/")[1])["endpoints"]) | {"/"}
    # POST /sessions/close exists only on a key-logging sidecar (tests/integration/
    # test_wire.py's capture uses it); this one logs no keys, so it has none
    keylog_only = {"/sessions/close"}
    assert documented("The sidecar's admin port") - keylog_only == served
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{m.server.admin}/sessions/close", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code in (404, 405)
    app = Console(ConsoleConfig(sidecar_admins=(), metrics=()), tmp_path).app()
    routes = {r.canonical.replace("/static", "/static/{file}") for r in app.router.resources()}
    assert documented("The console") == routes
