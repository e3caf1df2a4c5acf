"""Reading a capture back: the TCP segments of a pcapng (dumpcap) or pcap (tcpdump)
file of the loopback interface, as (source port, destination port, payload). Enough to
put two hops of one call side by side; Wireshark is for everything else."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_ETHERNET, LINKTYPE_NULL, LINKTYPE_LOOP, LINKTYPE_RAW = 1, 0, 108, 101


@dataclass(frozen=True)
class Segment:
    """One TCP segment with a payload."""

    src_port: int
    dst_port: int
    payload: bytes


def _ip_payload(link: int, frame: bytes) -> bytes | None:
    if link == LINKTYPE_ETHERNET:
        return frame[14:] if frame[12:14] == b"\x08\x00" else None
    if link in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return frame[4:]
    if link == LINKTYPE_RAW:
        return frame
    return None


def _udp_payload(link: int, frame: bytes) -> bytes:
    ip = _ip_payload(link, frame)
    if ip is None or len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:  # IPv4, UDP
        return b""
    return ip[(ip[0] & 0x0F) * 4 + 8 : int.from_bytes(ip[2:4], "big")]


def _segment(link: int, frame: bytes) -> Segment | None:
    ip = _ip_payload(link, frame)
    if ip is None or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:  # IPv4, TCP
        return None
    total = int.from_bytes(ip[2:4], "big")
    tcp = ip[(ip[0] & 0x0F) * 4 : total]
    if len(tcp) < 20:
        return None
    src, dst = struct.unpack(">HH", tcp[:4])
    payload = tcp[(tcp[12] >> 4) * 4 :]
    return Segment(src, dst, payload) if payload else None


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):  # classic pcap
        end = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
        link = struct.unpack(end + "I", data[20:24])[0]
        out, pos = [], 24
        while pos + 16 <= len(data):
            incl = struct.unpack(end + "I", data[pos + 8 : pos + 12])[0]
            if pos + 16 + incl > len(data):
                break  # still being written
            out.append((link, data[pos + 16 : pos + 16 + incl]))
            pos += 16 + incl
        return out
    if len(data) < 12:
        return []  # nothing written yet
    if magic != b"\x0a\x0d\x0d\x0a":
        raise ValueError("not a pcap or pcapng file")
    end = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    links: list[int] = []
    out, pos = [], 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack(end + "II", data[pos : pos + 8])
        if blen < 12 or pos + blen > len(data):
            break  # still being written
        body = data[pos + 8 : pos + blen - 4]
        if btype == 1:  # interface description: its link type
            links.append(struct.unpack(end + "H", body[:2])[0])
        elif btype == 6:  # enhanced packet
            iface, _hi, _lo, cap = struct.unpack(end + "IIII", body[:16])
            out.append((links[iface] if iface < len(links) else -1, body[20 : 20 + cap]))
        pos += blen
    return out


def segments(path: Path) -> list[Segment]:
    """Every TCP segment with a payload, in capture order."""
    return [s for link, frame in _frames(path.read_bytes()) if (s := _segment(link, frame))]


def has_marker(path: Path, marker: bytes) -> bool:
    """Whether a UDP datagram carrying ``marker`` is in the file yet (the capture's own
    probe: everything captured before it is in the file too)."""
    try:
        frames = _frames(path.read_bytes())
    except (OSError, ValueError, struct.error):
        return False
    return any(_udp_payload(link, frame) == marker for link, frame in frames)
