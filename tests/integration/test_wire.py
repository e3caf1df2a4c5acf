"""On the wire: the MTD/1 dissector in Wireshark's own tshark reads what the core wrote,
field by field, and decrypts it with the sidecars' key log; `mtlsdemo capture` of a live
mesh shows the same calls in clear between an app and its sidecar and only as ciphertext
between the sidecars."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake import parse_suites
from mtlsdemo.wire.tables import dissector_path
from support import hskit, pcap
from support.docblocks import SAYS, blocks, commands
from support.processes import running_mesh
from support.tools import require_binary, require_tool

pytestmark = pytest.mark.integration

LUA = str(dissector_path())


def tshark(*args: str) -> str:
    exe = require_binary("tshark")
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


LUAOSSL = Path("/usr/share/lua/5.2/openssl/cipher.lua")  # Debian's lua-luaossl, for Lua 5.2


def luaossl() -> None:
    """The dissector decrypts with lua-luaossl inside tshark's Lua 5.2."""
    require_tool("luaossl", LUAOSSL.exists(), f"lua-luaossl is not installed ({LUAOSSL} missing)")


def mtlsdemo_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    """`mtlsdemo ARGS` as a user runs it (text, captured, bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "mtlsdemo", *args],
        capture_output=True, text=True, timeout=120, check=False, **kw,
    )  # fmt: skip


def fields(pdml: str) -> list[tuple[str, str, str]]:
    """(name, value hex, shown text) of every field tshark shows, in order."""
    out = []
    for f in ET.fromstring(pdml).iter("field"):
        out.append((f.get("name", ""), f.get("value", ""), f.get("show", "")))
    return out


def dissect(
    tmp_path: Path, flights: list[tuple[str, bytes]], keys: str
) -> list[tuple[str, str, str]]:
    """The flights as a pcap, read by tshark with the dissector and this key log: every
    field it shows."""
    cap, log = tmp_path / "flights.pcap", tmp_path / "keys.log"
    pcap.write(cap, flights)
    log.write_text(keys)
    return fields(
        tshark(
            "-r", str(cap), "-X", f"lua_script:{LUA}", "-o", f"mtd.keylog_file:{log}", "-T", "pdml"
        )
    )


def values(found: list[tuple[str, str, str]], name: str) -> list[bytes]:
    return [bytes.fromhex(v) for n, v, _ in found if n == name]


def recorded(
    seed: bytes,
    tamper_app: bool = False,
    suite: str = "X25519MLKEM768-AES-256-GCM",
    key_type: str = "ecdsa-p256",
) -> tuple[list[tuple[str, bytes]], str, bytes, bytes]:
    """A deterministic full handshake, two records each way with a key update between,
    as the flights on the wire, the key log, and the app bytes sent."""
    suites = parse_suites(suite)
    ccfg = hskit.config("gateway", key_type, keep_secrets=True, suites=suites)
    scfg = hskit.config("ledger", key_type, keep_secrets=True, suites=suites)
    c = hskit.new("client", ccfg, seed=seed + b"c")
    s = hskit.new("server", scfg, seed=seed + b"s")
    flights: list[tuple[str, bytes]] = []

    def keep(direction: str, data: bytes) -> bytes:
        flights.append((direction, data))
        return data

    out = hskit.pump(c, s, keep)
    assert out.completed("client") and out.completed("server")
    sent_c, sent_s = b"", b""
    for i in range(2):
        c.send_data(b"the account alice, part %d" % i)
        sent_c += b"the account alice, part %d" % i
        data = c.data_to_send()
        if tamper_app and i == 1:
            data = data[:-20] + bytes([data[-20] ^ 0x01]) + data[-19:]  # one ciphertext bit
        flights.append(("c2s", data))
        if tamper_app and i == 1:
            break  # the server would refuse it (decrypt_error): the wire ends here
        s.receive_data(data)
        s.send_data(b"balance %d" % i)
        sent_s += b"balance %d" % i
        flights.append(("s2c", s.data_to_send()))
        c.update_keys()  # the next client record is under the next key
        update = c.data_to_send()
        flights.append(("c2s", update))
        s.receive_data(update)
    assert c.secrets is not None
    return flights, c.secrets.key_log_lines(), sent_c, sent_s


SUITES_AND_KEYS = [
    ("X25519MLKEM768-AES-256-GCM", "ecdsa-p256"),
    ("X25519MLKEM768-AES-256-GCM", "ml-dsa-65"),  # multi-KB certificates: messages span records
    ("ECDHE-X25519-AES-128-GCM", "ecdsa-p256"),
    ("RSA-OAEP-AES-256-GCM", "rsa-2048"),
]


def message_layouts(pdml: str) -> list[list[tuple[str, int, int]]]:
    """Per handshake message the dissector showed: its fields as (name, offset in the
    message, size), the way ``messages.layout`` gives them."""
    out = []
    for msg in ET.fromstring(pdml).iter("field"):
        if msg.get("name") != "mtd.handshake":
            continue
        base = int(msg.get("pos", "0"))
        out.append(
            [
                (f.get("name", "")[4:], int(f.get("pos", "0")) - base, int(f.get("size", "0")))
                for f in msg.findall("field")
                if f.get("name", "").startswith("mtd.")
                and f.get("name") not in ("mtd.step", "mtd.alert.claim")
            ]
        )
    return out


@pytest.mark.parametrize(("suite", "key_type"), SUITES_AND_KEYS)
def test_the_dissectors_field_offsets_are_the_codecs(
    tmp_path: Path, suite: str, key_type: str
) -> None:
    """Every field of every handshake message at the byte offset and size the core's
    encoder gave it (``messages.layout``: one source for the bytes and their names)."""
    flights, keys, _c, _s = recorded(b"wire-layout", suite=suite, key_type=key_type)
    cap = tmp_path / "one.pcap"
    pcap.write(cap, flights)
    pdml = tshark("-r", str(cap), "-X", f"lua_script:{LUA}", "-T", "pdml")
    expected = [
        m.layout(m.decode(raw[0], raw[4:]))
        for _, data in flights
        for t, raw in hskit.split_messages(data)
        if t == 22
    ]
    shown = message_layouts(pdml)
    assert len(shown) == len(expected) >= 9
    for got, want in zip(shown, expected, strict=True):
        assert got == want


@pytest.mark.parametrize(("suite", "key_type"), SUITES_AND_KEYS)
def test_every_suite_decrypts_with_the_key_log(tmp_path: Path, suite: str, key_type: str) -> None:
    luaossl()
    flights, keys, sent_c, sent_s = recorded(b"wire-suite", suite=suite, key_type=key_type)
    found = dissect(tmp_path, flights, keys)
    app = b"".join(d for d in values(found, "mtd.decrypted") if len(d) > 1)
    assert app == b"the account alice, part 0balance 0the account alice, part 1balance 1"
    assert (
        sent_c + sent_s == b"the account alice, part 0the account alice, part 1balance 0balance 1"
    )
    tags = [show for n, _, show in found if n == "mtd.tag_ok"]
    assert len(tags) == 6 and set(tags) == {"1"}, tags  # 4 application records, 2 key updates


def test_the_dissector_names_every_field_as_the_core_encoded_it(tmp_path: Path) -> None:
    luaossl()
    flights, keys, sent_c, sent_s = recorded(b"wire-1")
    found = dissect(tmp_path, flights, keys)
    names = {n for n, _, _ in found}
    assert "mtd.malformed" not in names and "mtd.not_decrypted" not in names, names
    # every message the core put on the wire, decoded by the core's codec
    msgs = {
        d: [
            m.decode(raw[0], raw[4:])
            for t, raw in hskit.split_messages(b"".join(b for dd, b in flights if dd == d))
            if t == 22
        ]
        for d in ("c2s", "s2c")
    }
    ch, sh = msgs["c2s"][0], msgs["s2c"][0]
    assert values(found, "mtd.random") == [ch.random, sh.random]
    certs = [x for x in msgs["s2c"] + msgs["c2s"] if isinstance(x, m.Certificate)]
    assert values(found, "mtd.certificate") == [der for x in certs for der in x.chain]
    assert values(found, "mtd.certificate.status") == [x.status for x in certs]
    sks = next(x for x in msgs["s2c"] if isinstance(x, m.ServerKeyShare))
    ek = values(found, "mtd.server_key_share.mlkem768_encapsulation_key")
    x25519 = values(found, "mtd.x25519_public_key")
    assert len(ek[0]) == 1184 and ek[0] + x25519[0] == sks.public
    cke = next(x for x in msgs["c2s"] if isinstance(x, m.ClientKeyExchange))
    ct = values(found, "mtd.client_key_exchange.mlkem768_ciphertext")
    assert len(ct[0]) == 1088 and ct[0] + x25519[1] == cke.data
    cvs = [x for x in msgs["s2c"] + msgs["c2s"] if isinstance(x, m.CertificateVerify)]
    assert values(found, "mtd.certificate_verify.signature") == [x.signature for x in cvs]
    fins = [x for x in msgs["c2s"] + msgs["s2c"] if isinstance(x, m.Finished)]
    assert sorted(values(found, "mtd.finished.verify_data")) == sorted(x.verify_data for x in fins)
    # every record decrypted, its tag verified, key update followed; the plaintext is what was sent
    decrypted = values(found, "mtd.decrypted")
    app = b"".join(d for d in decrypted if len(d) > 1)
    assert app == b"".join(
        part
        for pair in zip(
            [b"the account alice, part 0", b"the account alice, part 1"],
            [b"balance 0", b"balance 1"],
            strict=True,
        )
        for part in pair
    )
    assert sent_c and sent_s
    tags = [show for n, _, show in found if n == "mtd.tag_ok"]
    assert tags and all(t == "1" for t in tags), tags
    generations = [show for n, _, show in found if n == "mtd.key_generation"]
    assert "1" in generations  # the second client record is under the updated key
    # no byte on the wire outside a record the dissector showed
    wire = sum(len(b) for _, b in flights)
    assert sum(5 + int(show) for n, _, show in found if n == "mtd.record.length") == wire


def test_a_changed_ciphertext_byte_fails_its_tag_in_the_dissector(tmp_path: Path) -> None:
    luaossl()
    flights, keys, _c, _s = recorded(b"wire-2", tamper_app=True)
    found = dissect(tmp_path, flights, keys)
    tags = [show for n, _, show in found if n == "mtd.tag_ok"]
    assert tags.count("0") == 1, tags
    assert "mtd.tag_failed" in {n for n, _, _ in found}


def test_without_the_key_log_records_say_why_they_stay_opaque(tmp_path: Path) -> None:
    flights, _keys, _c, _s = recorded(b"wire-3")
    cap = tmp_path / "one.pcap"
    pcap.write(cap, flights)
    out = tshark("-r", str(cap), "-X", f"lua_script:{LUA}", "-V")
    assert "ClientHello" in out and "Certificate (DER)" in out
    assert "no key log set (preference mtd.keylog_file)" in out
    assert "Decrypted:" not in out


def test_a_capture_of_the_live_mesh_decrypts_every_record_and_the_name_stays_off_the_mtd_hop(
    tmp_path: Path,
) -> None:
    luaossl()
    require_binary("dumpcap")
    if os.geteuid() != 0:
        require_tool("capture", False, "capturing on lo needs root here")
    with running_mesh(tmp_path, "--keylog", str(tmp_path / "sidecars.keys")) as (ports, env):
        # docs/how-to.md "See it on the wire", as written (the mesh above is its `make run`)
        env = {**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
        printed = {}
        for cmd, comment in commands(blocks(section="See it on the wire")[0]):
            if cmd.startswith("make run"):
                assert "--keylog sidecars.keys" in cmd
                continue
            r = subprocess.run(
                ["bash", "-c", cmd],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"
            said = SAYS.search(comment)
            assert said and said.group(1) in r.stdout, f"{cmd}: {comment}: {r.stdout[-2000:]}"
            printed[cmd.split()[1] if cmd.startswith("mtlsdemo") else cmd.split()[0]] = r.stdout
    r = subprocess.CompletedProcess([], 0, printed["capture"], "")
    out = tmp_path / "mesh.pcapng"
    account = r.stdout.split('the account name "')[1].split('"')[0]
    assert (
        f"is in clear on port(s) {min(ports['route'], ports['ledger_app'])}, "
        f"{max(ports['route'], ports['ledger_app'])} (the apps and their sidecars) and in no packet"
    ) in r.stdout
    ended = int(r.stdout.split("sessions ended before the window: ")[1].split()[0])
    assert ended >= 1  # the gateway's long-lived session to the ledger (POST /sessions/close)
    key_file = out.with_suffix(".keys")
    assert "-o mtd.keylog_file:mesh.keys" in r.stdout  # the command prints the file as given
    mtd_port, route, ledger_app, tls = (
        ports["ledger"],
        ports["route"],
        ports["ledger_app"],
        ports["gateway"],
    )
    opts = [
        "-r",
        str(out),
        "-X",
        f"lua_script:{LUA}",
        "-o",
        f"mtd.keylog_file:{key_file}",
        "-d",
        f"tcp.port=={route},http2",
        "-d",
        f"tcp.port=={ledger_app},http2",
    ]
    # every segment with bytes on the MTD/1 hop is MTD/1; nothing malformed or opaque
    rows = tshark(
        *opts,
        "-Y",
        f"tcp.port=={mtd_port} && tcp.len>0",
        "-T",
        "fields",
        "-e",
        "frame.protocols",
        "-e",
        "mtd.record.type",
    ).splitlines()
    assert rows and all(":mtd" in row for row in rows), rows
    assert (
        tshark(
            *opts,
            "-Y",
            "mtd.malformed || mtd.not_decrypted || mtd.tag_ok==0 || _ws.malformed",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ).strip()
        == ""
    )
    records = tshark(*opts, "-Y", "mtd.record.type==23", "-T", "fields", "-e", "mtd.tag_ok").split()
    assert records and set(",".join(records).split(",")) == {"1"}, records
    # the decrypted HTTP/2 names the ledger's methods the calls used
    paths = tshark(
        *opts,
        "-Y",
        f'tcp.port=={mtd_port} && http2.header.name == ":path"',
        "-T",
        "fields",
        "-e",
        "http2.header.value",
    )
    assert "/mtlsdemo.ledger.v1.LedgerService/CreateAccount" in paths
    # the account name: in clear between an app and its sidecar, never between the sidecars or on TLS
    raw = ["-r", str(out), "-Y", f'frame contains "{account}"', "-T", "fields", "-e", "tcp.port"]
    carrying = {int(p) for line in tshark(*raw).split() for p in line.split(",")}
    assert route in carrying and ledger_app in carrying
    assert mtd_port not in carrying and tls not in carrying
    # real TLS 1.3 beside it: Wireshark's own TLS dissector decrypts the Python-ssl call
    # with the secrets embedded in the file (no key log option given)
    tls_paths = tshark(
        "-r",
        str(out),
        "-Y",
        f'tcp.port=={tls} && http2.header.name == ":path"',
        "-T",
        "fields",
        "-e",
        "http2.header.value",
    )
    assert "/mtlsdemo.gateway.v1.GatewayService/GetBalance" in tls_paths
    assert tshark(
        "-r", str(out), "-Y", "tls.handshake.type == 11", "-T", "fields", "-e", "frame.number"
    ).strip()


def test_a_capture_of_break_tamper_shows_the_failed_tag_of_the_changed_record(
    tmp_path: Path,
) -> None:
    luaossl()
    require_binary("dumpcap")
    if os.geteuid() != 0:
        require_tool("capture", False, "capturing on lo needs root here")
    from mtlsdemo.wire.capture import Recorder

    keys = tmp_path / "sidecars.keys"
    cap = tmp_path / "tamper.pcapng"
    with running_mesh(tmp_path, "--keylog", str(keys)) as (ports, env):
        recorder = Recorder("lo", f"tcp port {ports['ledger']}", cap)
        try:
            r = mtlsdemo_cli("break", "tamper", "--certs-dir", str(tmp_path / "certs"), env=env)
        finally:
            recorder.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the last byte of its AEAD tag: 0x" in r.stdout
    flipped = r.stdout.split("the last byte of its AEAD tag: ")[1].split()[0:3]  # 0xAB -> 0xAC
    opts = ["-r", str(cap), "-X", f"lua_script:{LUA}", "-o", f"mtd.keylog_file:{keys}"]
    failed = tshark(*opts, "-Y", "mtd.tag_ok == 0", "-T", "fields", "-e", "mtd.tag").split()
    assert len(failed) == 1, failed
    assert failed[0].endswith(flipped[2][2:]), (failed, flipped)  # the changed byte, as it arrived
    assert tshark(*opts, "-Y", "mtd.tag_failed", "-T", "fields", "-e", "frame.number").strip()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["capture", "--gateway-admin", "127.0.0.1:1", "--ledger-admin", "127.0.0.1:1"],
            "no mesh answers",
        ),
        (["capture", "--out", "x.pcap"], "name the file *.pcapng"),
        (["wireshark"], "one of the arguments"),
    ],
)
def test_bad_input_gets_one_line(tmp_path: Path, argv: list[str], said: str) -> None:
    r = mtlsdemo_cli(*argv, cwd=tmp_path)
    assert r.returncode == 2
    assert said in r.stderr and "Traceback" not in r.stderr
    assert said in r.stderr.strip().splitlines()[-1]  # the line that says it, last


def test_no_capture_tool_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    r = mtlsdemo_cli("capture", env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert (
        r.stderr.strip()
        == "error: no capture tool: install dumpcap (Debian: `apt install tshark`) or tcpdump"
    )


def test_the_consoles_in_memory_capture_opens_decrypted_in_tshark(tmp_path: Path) -> None:
    import base64

    from mtlsdemo.console.tryout import Tryout, TryRequest

    luaossl()
    c = Tryout(tmp_path / "pki").run(TryRequest(key_type="ml-dsa-65"))["capture"]
    (tmp_path / c["pcap_name"]).write_bytes(base64.b64decode(c["pcap_base64"]))
    (tmp_path / c["keys_name"]).write_text(c["keys"])
    exe = require_binary("tshark")
    r = subprocess.run(
        [
            "bash",
            "-c",
            c["open"].replace("$(mtlsdemo wireshark --print-path)", LUA).replace("tshark", exe, 1),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "ClientHello" in r.stdout and "MLDSA65" in r.stdout
    assert "AEAD tag verified: True" in r.stdout and "Malformed" not in r.stdout
    decrypted = "".join(
        line.split("Decrypted: ")[1] for line in r.stdout.splitlines() if "Decrypted: " in line
    )
    assert b"GET /balance".hex() in decrypted


def test_a_capture_that_is_not_ours_shows_no_mtd(tmp_path: Path) -> None:
    cap = tmp_path / "other.pcap"
    pcap.write(
        cap,
        [("c2s", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ("s2c", b"HTTP/1.1 200 OK\r\n\r\n")],
        server=("127.0.0.1", 8080),
    )
    out = tshark("-r", str(cap), "-X", f"lua_script:{LUA}", "-T", "fields", "-e", "frame.protocols")
    assert "mtd" not in out


def test_wireshark_prints_and_installs_the_dissector(tmp_path: Path) -> None:
    r = mtlsdemo_cli("wireshark", "--print-path")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == dissector_path() and dissector_path().is_file()
    r = mtlsdemo_cli("wireshark", "--install", "--plugins-dir", str(tmp_path / "plugins"))
    assert (tmp_path / "plugins" / "mtlsdemo-mtd.lua").read_bytes() == dissector_path().read_bytes()


def test_a_malformed_record_is_expert_info_on_its_bytes(tmp_path: Path) -> None:
    flights, _keys, _c, _s = recorded(b"wire-bad")
    bad_alert = bytes((21, 1, 0, 0, 3, 2, 50, 0))  # an alert record of 3 bytes: no such thing
    found = dissect(tmp_path, [flights[0], ("s2c", bad_alert)], "")
    assert "mtd.malformed" in {n for n, _v, _s in found}
    assert any("an alert is 2 bytes, this one 3" in show for _n, _v, show in found)
