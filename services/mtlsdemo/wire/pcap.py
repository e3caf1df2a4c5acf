"""A classic pcap of one TCP connection on 127.0.0.1, made from the bytes each side
sent: a handshake run in memory, put on a wire Wireshark can read (the console's
in-memory panel offers it for download; the dissector's tests read it)."""

from __future__ import annotations

import struct

Address = tuple[str, int]
CLIENT: Address = ("127.0.0.1", 40000)
SERVER: Address = ("127.0.0.1", 50051)  # the ledger sidecar's port: the dissector's default
MSS = 1400  # payload per segment: records and messages span segments, as on a real wire
_SYN, _ACK, _PSH = 0x02, 0x10, 0x08


def _ip(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def _packet(src: Address, dst: Address, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0,
        _ip(src[0]), _ip(dst[0]),
    )  # fmt: skip
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload  # Ethernet with zero MACs, as on lo


def pcap_bytes(
    flights: list[tuple[str, bytes]], client: Address = CLIENT, server: Address = SERVER
) -> bytes:
    """``flights``: ("c2s" | "s2c", bytes) in wire order; the TCP handshake first."""
    seq = {"c2s": 1000, "s2c": 5000}
    packets = [
        _packet(client, server, seq["c2s"] - 1, 0, _SYN, b""),
        _packet(server, client, seq["s2c"] - 1, seq["c2s"], _SYN | _ACK, b""),
        _packet(client, server, seq["c2s"], seq["s2c"], _ACK, b""),
    ]
    for direction, data in flights:
        src, dst = (client, server) if direction == "c2s" else (server, client)
        other = "s2c" if direction == "c2s" else "c2s"
        for i in range(0, len(data), MSS):
            chunk = data[i : i + MSS]
            packets.append(_packet(src, dst, seq[direction], seq[other], _ACK | _PSH, chunk))
            seq[direction] += len(chunk)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # LINKTYPE_ETHERNET
    for n, p in enumerate(packets):
        out.append(struct.pack("<IIII", 1_700_000_000 + n, 0, len(p), len(p)) + p)
    return b"".join(out)
