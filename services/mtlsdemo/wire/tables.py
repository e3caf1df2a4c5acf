"""The MTD/1 code points the Wireshark dissector names, rendered from the core's own
enums into a marked block of ``mtd.lua`` (one source: a unit test fails when the
block differs from what the core says; ``python -m mtlsdemo.wire.tables`` rewrites it)."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from mtlsdemo.handshake import kx
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.errors import ALERT_CODES
from mtlsdemo.handshake.messages import X25519_GROUP, X25519MLKEM768_GROUP, HandshakeType
from mtlsdemo.handshake.records import ContentType
from mtlsdemo.handshake.signatures import Scheme
from mtlsdemo.handshake.suites import SUITES, SUPPORTED_VERSIONS, version_name
from mtlsdemo.handshake.tickets import REFUSAL_CODES

BEGIN = "-- tables: generated from the handshake core (mtlsdemo.wire.tables); do not edit"
END = "-- /tables"

MESSAGE_NAMES = {
    HandshakeType.CLIENT_HELLO: "ClientHello",
    HandshakeType.SERVER_HELLO: "ServerHello",
    HandshakeType.NEW_SESSION_TICKET: "NewSessionTicket",
    HandshakeType.CERTIFICATE: "Certificate",
    HandshakeType.SERVER_KEY_SHARE: "ServerKeyShare",
    HandshakeType.CERTIFICATE_REQUEST: "CertificateRequest",
    HandshakeType.CERTIFICATE_VERIFY: "CertificateVerify",
    HandshakeType.CLIENT_KEY_EXCHANGE: "ClientKeyExchange",
    HandshakeType.FINISHED: "Finished",
}


def dissector_path() -> Path:
    """The dissector file inside the installed package."""
    return Path(str(resources.files("mtlsdemo.wire") / "mtd.lua"))


def _lua(value: int | str) -> str:
    return str(value) if isinstance(value, int) else '"' + value + '"'


def _table(name: str, items: dict[int, int] | dict[int, str]) -> str:
    rows = "".join(f"  [{code}] = {_lua(value)},\n" for code, value in items.items())
    return f"local {name} = {{\n{rows}}}\n"


def render() -> str:
    suites = {s.code: s for s in SUITES}
    parts = [
        BEGIN + "\n",
        _table("RECORD_TYPES", {int(t): t.name.lower() for t in ContentType}),
        _table("MESSAGE_TYPES", {int(t): n for t, n in MESSAGE_NAMES.items()}),
        _table("VERSIONS", {v: version_name(v) for v in SUPPORTED_VERSIONS}),
        _table("SUITES", {c: s.name for c, s in sorted(suites.items())}),
        # key exchange of each suite: "hybrid", "x25519" or "rsa" (how ClientKeyExchange splits)
        _table(
            "SUITE_KX",
            {
                c: {"X25519MLKEM768": "hybrid", "ECDHE-X25519": "x25519", "RSA-OAEP": "rsa"}[
                    s.kx.value
                ]
                for c, s in sorted(suites.items())
            },
        ),
        _table("SUITE_AEAD", {c: s.aead for c, s in sorted(suites.items())}),
        _table("SUITE_KEY_LEN", {c: s.key_len for c, s in sorted(suites.items())}),
        _table("GROUPS", {X25519_GROUP: "x25519", X25519MLKEM768_GROUP: "X25519MLKEM768"}),
        _table("SCHEMES", {int(s): s.name for s in Scheme}),
        _table(
            "ALERTS", {code: r.value for r, code in sorted(ALERT_CODES.items(), key=lambda x: x[1])}
        ),
        _table("REFUSALS", {0: "none", **{code: r.value for r, code in REFUSAL_CODES.items()}}),
        f"local X25519_LEN, MLKEM768_EK_LEN, MLKEM768_CT_LEN = {kx.X25519_LEN}, "
        f"{kx.MLKEM768_EK_LEN}, {kx.MLKEM768_CT_LEN}\n",
        f"local RANDOM_LEN, BINDER_LEN = {m.RANDOM_LEN}, {m.BINDER_LEN}\n",
        END,
    ]
    return "".join(parts)


def current_block(text: str) -> str:
    start = text.index(BEGIN)
    end = text.index(END, start) + len(END)
    return text[start:end]


def rewrite(path: Path) -> bool:
    text = path.read_text()
    new = text.replace(current_block(text), render())
    if new == text:
        return False
    path.write_text(new)
    return True


if __name__ == "__main__":
    changed = rewrite(dissector_path())
    print(f"{dissector_path()}: {'rewritten' if changed else 'current'}")
    sys.exit(0)
