"""Random and mutated byte streams into both roles: the only outcomes are progress
or the protocol's own ProtocolError; never another exception, never a hang."""

from __future__ import annotations

from hskit import NOW, config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mtlsdemo.handshake import Connection, ProtocolError

CLIENT_CFG = config("gateway")
SERVER_CFG = config("ledger")
FUZZ = settings(max_examples=int(__import__("os").environ.get("MTLSDEMO_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=list(HealthCheck))


def _transcript() -> list[tuple[str, bytes]]:
    """A real handshake's flights, in order: (receiver, bytes)."""
    c = Connection("client", CLIENT_CFG, now=NOW)
    s = Connection("server", SERVER_CFG, now=NOW)
    c.start()
    flights = []
    for _ in range(2):
        data = c.data_to_send()
        flights.append(("server", data))
        s.receive_data(data)
        data = s.data_to_send()
        flights.append(("client", data))
        c.receive_data(data)
    c.send_data(b"application bytes")
    flights.append(("server", c.data_to_send()))
    return flights


FLIGHTS = _transcript()


def feed(conn: Connection, chunks: list[bytes]) -> None:
    for chunk in chunks:
        try:
            conn.receive_data(chunk)
        except ProtocolError as e:
            assert e.reason.value != "internal_error", e  # a crash in disguise
            assert conn.state.value == "failed"
            conn.data_to_send()  # the alert is always encodable
            return


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8))
def test_random_bytes_into_server(chunks: list[bytes]) -> None:
    feed(Connection("server", SERVER_CFG, now=NOW), chunks)


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8))
def test_random_bytes_into_started_client(chunks: list[bytes]) -> None:
    c = Connection("client", CLIENT_CFG, now=NOW)
    c.start()
    feed(c, chunks)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(b) - 1)))
        if op == "flip" and b:
            b[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and b:
            b[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            b[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and b:
            del b[pos:pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del b[pos:]
    return bytes(b)


@FUZZ
@given(st.data())
def test_mutated_handshake_streams(data: st.DataObject) -> None:
    """Replay a real handshake, mutating one flight, split at random points."""
    which = data.draw(st.integers(0, len(FLIGHTS) - 1))
    c = Connection("client", CLIENT_CFG, now=NOW)
    s = Connection("server", SERVER_CFG, now=NOW)
    c.start()
    c.data_to_send()
    for i, (receiver, flight) in enumerate(FLIGHTS):
        conn = s if receiver == "server" else c
        if i == which:
            flight = data.draw(mutated(flight))
        cut = data.draw(st.integers(0, len(flight)))
        try:
            conn.receive_data(flight[:cut])
            conn.receive_data(flight[cut:])
        except ProtocolError as e:
            assert e.reason.value != "internal_error", e
            return
    # Replayed flights belong to another session, so a real success is impossible:
    # the connection must have failed or still be waiting, never "connected".
    assert not (s.handshake_done and c.handshake_done)
