"""The key log: what the core keeps for it, the NSS lines, the file the sidecar writes,
and that nothing ships with it on."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from mtlsdemo.handshake.keyschedule import traffic_keys
from mtlsdemo.handshake.records import ContentType, header
from mtlsdemo.sidecar.keylog import HEADER, KeyLog
from support import hskit

ROOT = Path(__file__).resolve().parents[2]


def _pair(keep: bool):
    ccfg = hskit.config("gateway", keep_secrets=keep)
    scfg = hskit.config("ledger", keep_secrets=keep)
    return hskit.handshake(ccfg, scfg)


def test_without_a_key_log_the_core_keeps_no_secret() -> None:
    c, s, out = _pair(keep=False)
    assert out.completed("client") and out.completed("server")
    assert c.secrets is None and s.secrets is None


def test_both_sides_log_the_same_secrets_and_they_open_the_clients_records() -> None:
    c, s, out = _pair(keep=True)
    assert c.secrets == s.secrets and c.secrets is not None
    assert c.secrets.client != c.secrets.server
    c.send_data(b"the account alice")
    record = c.data_to_send()
    key, iv = traffic_keys(c.secrets.client, c.suite.key_len)
    nonce = iv  # sequence number 0: iv XOR 0
    opened = AESGCM(key).decrypt(
        nonce, record[5:], header(ContentType.APPLICATION_DATA, len(record) - 5)
    )
    assert opened == b"the account alice"
    lines = c.secrets.key_log_lines().splitlines()
    cr = c.secrets.client_random.hex()
    assert lines == [
        f"MTD_CLIENT_TRAFFIC_SECRET_0 {cr} {c.secrets.client.hex()}",
        f"MTD_SERVER_TRAFFIC_SECRET_0 {cr} {c.secrets.server.hex()}",
    ]


def test_the_key_log_file_is_the_owners_only_and_appends(tmp_path: Path) -> None:
    c, _s, _out = _pair(keep=True)
    path = tmp_path / "keys.log"
    log = KeyLog(path)
    log.write(c.secrets)
    KeyLog(path).write(c.secrets)  # a second sidecar appending to the same file
    text = path.read_text()
    assert text.startswith(HEADER) and text.count(HEADER) == 1
    assert text.count("MTD_CLIENT_TRAFFIC_SECRET_0") == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_shipped_deployment_turns_the_key_log_on() -> None:
    shipped = [
        ROOT / "deploy" / "compose" / "docker-compose.yml",
        *sorted((ROOT / "deploy" / "k8s").rglob("*.yaml")),
    ]
    assert len(shipped) > 5
    for f in shipped:
        text = f.read_text().lower()
        assert "keylog" not in text and "keylog_file" not in text, f


def test_the_dissectors_tables_are_the_cores() -> None:
    from mtlsdemo.wire.tables import current_block, dissector_path, render

    assert current_block(dissector_path().read_text()) == render(), (
        "mtd.lua's tables differ from the core: run `python -m mtlsdemo.wire.tables`"
    )
