"""A classic pcap file of one TCP connection on 127.0.0.1, written from the bytes each
side sent (a handshake run in memory, put on a wire for Wireshark to read)."""

from __future__ import annotations

import struct
from pathlib import Path

CLIENT, SERVER = ("127.0.0.1", 40000), ("127.0.0.1", 50051)
MSS = 1400  # payload per segment: records and messages span segments, as on a real wire


def _ip(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def _packet(
    src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int, payload: bytes
) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, _ip(src[0]), _ip(dst[0])
    )
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp  # Ethernet, zero MACs, as on lo


def write(path: Path, flights: list[tuple[str, bytes]], server: tuple[str, int] = SERVER) -> None:
    """``flights``: ("c2s" | "s2c", bytes) in wire order."""
    SYN, ACK, PSH = 0x02, 0x10, 0x08
    seq = {"c2s": 1000, "s2c": 5000}
    packets = [
        _packet(CLIENT, server, seq["c2s"] - 1, 0, SYN, b""),
        _packet(server, CLIENT, seq["s2c"] - 1, seq["c2s"], SYN | ACK, b""),
        _packet(CLIENT, server, seq["c2s"], seq["s2c"], ACK, b""),
    ]
    for direction, data in flights:
        src, dst = (CLIENT, server) if direction == "c2s" else (server, CLIENT)
        other = "s2c" if direction == "c2s" else "c2s"
        for i in range(0, len(data), MSS):
            chunk = data[i : i + MSS]
            packets.append(_packet(src, dst, seq[direction], seq[other], ACK | PSH, chunk))
            seq[direction] += len(chunk)
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, p in enumerate(packets):
            f.write(struct.pack("<IIII", 1_700_000_000 + n, 0, len(p), len(p)) + p)
