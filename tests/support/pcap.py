"""The package's pcap writer (mtlsdemo.wire.pcap), to a file."""

from __future__ import annotations

from pathlib import Path

from mtlsdemo.wire.pcap import SERVER, Address, pcap_bytes


def write(path: Path, flights: list[tuple[str, bytes]], server: Address = SERVER) -> None:
    path.write_bytes(pcap_bytes(flights, server=server))
