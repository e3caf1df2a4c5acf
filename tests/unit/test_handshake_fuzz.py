"""Random and mutated byte streams into both roles: the only outcomes are progress
or the protocol's own ProtocolError; never another exception, never a hang."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mtlsdemo.handshake import Connection, ProtocolError
from mtlsdemo.handshake.suites import CLASSIC_SUITES
from mtlsdemo.handshake.tickets import TicketCache, TicketKeys
from support.hskit import config, new

# Classic X25519: the hybrid suites' ML-KEM encapsulation draws randomness the core
# cannot be handed (cryptography has no encapsulation from given randomness), so only
# classic transcripts replay byte for byte; the hybrid's own tests are by construction.
CLIENT_CFG = config("gateway", suites=CLASSIC_SUITES)
SERVER_CFG = config("ledger", suites=CLASSIC_SUITES)
FUZZ = settings(
    max_examples=int(__import__("os").environ.get("MTLSDEMO_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


SEEDS = {"client": b"fuzz-client", "server": b"fuzz-server"}


def pair(resumed: bool = False) -> tuple[Connection, Connection]:
    """A client and a server whose randomness replays byte for byte: both with
    session tickets (MTD/1.1), so a full handshake carries a NewSessionTicket.
    ``resumed``: a first seeded full handshake fills the client's ticket cache, so
    this pair resumes."""
    ccfg = dataclasses.replace(CLIENT_CFG, ticket_cache=TicketCache(), ticket_peer="ledger")
    scfg = dataclasses.replace(SERVER_CFG, tickets=TicketKeys())
    if resumed:
        c0, s0 = new("client", ccfg, seed=b"fuzz-first"), new("server", scfg, seed=b"fuzz-first")
        c0.start()
        for _ in range(2):
            s0.receive_data(c0.data_to_send())
            c0.receive_data(s0.data_to_send())
        assert c0.handshake_done and len(ccfg.ticket_cache or ()) == 1
    return (
        new("client", ccfg, seed=SEEDS["client"]),
        new("server", scfg, seed=SEEDS["server"]),
    )


def _transcript(resumed: bool = False) -> list[tuple[str, bytes]]:
    """A real handshake's flights, then records, in order: (receiver, bytes)."""
    c, s = pair(resumed)
    c.start()
    flights = []

    def deliver(receiver: str) -> None:
        sender, conn = (c, s) if receiver == "server" else (s, c)
        data = sender.data_to_send()
        if data:
            flights.append((receiver, data))
            conn.receive_data(data)

    for _ in range(2):
        deliver("server")
        deliver("client")
    c.send_data(b"application bytes")
    c.update_keys(request_peer=True)
    c.send_data(b"after a key update")
    deliver("server")
    s.send_data(b"the server answers")
    deliver("client")
    c.close()
    deliver("server")
    return flights


FLIGHTS = _transcript()
RESUMED_FLIGHTS = _transcript(resumed=True)


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
    feed(new("server", SERVER_CFG), chunks)


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8))
def test_random_bytes_into_started_client(chunks: list[bytes]) -> None:
    c = new("client", CLIENT_CFG)
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
            del b[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del b[pos:]
    return bytes(b)


@FUZZ
@given(st.data())
def test_mutated_handshake_streams(data: st.DataObject) -> None:
    """Replay a real handshake, mutating one flight, split at random points."""
    which = data.draw(st.integers(0, len(FLIGHTS) - 1))
    c, s = pair()
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
    # no error raised: the mutation was harmless or left a side waiting for more
    # bytes (a truncated record); never a failure that was not reported
    assert "failed" not in (c.state.value, s.state.value)


def test_the_recorded_transcript_replays_to_the_end() -> None:
    """Deterministic core: the same seeds give the same bytes, so a replayed
    transcript completes — the mutations below reach every later state."""
    c, s = pair()
    c.start()
    c.data_to_send()
    got = []
    for receiver, flight in FLIGHTS:
        got += (s if receiver == "server" else c).receive_data(flight)
    assert c.handshake_done and s.handshake_done
    assert [e.data for e in got if hasattr(e, "data") and isinstance(e.data, bytes)] == [
        b"application bytes",
        b"after a key update",
        b"the server answers",
    ]
    assert s.state.value == "closed"


def test_resumed_transcript_replays_and_is_short() -> None:
    """The resumed transcript replays too, and is a resumption: three flights of
    handshake (hello; ServerHello, key share, Finished; Finished), no certificate."""
    c, s = pair(resumed=True)
    c.start()
    c.data_to_send()
    for receiver, flight in RESUMED_FLIGHTS:
        (s if receiver == "server" else c).receive_data(flight)
    assert c.result is not None and s.result is not None
    assert c.result.resumed and s.result.resumed
    assert [name for _d, name, *_ in c.ladder] == [
        "CLIENT_HELLO",
        "SERVER_HELLO",
        "SERVER_KEY_SHARE",
        "FINISHED",
        "FINISHED",
    ]


def test_mutations_of_every_flight_reach_every_handler_and_end_in_a_named_reason(
    monkeypatch,
) -> None:
    """Seeded mutations of each flight of the replayable transcripts (a full
    handshake, then a resumed one): every message handler of both roles runs on
    mutated input, and every run ends in success or a
    ProtocolError with a named reason other than internal_error."""
    import random

    from mtlsdemo.handshake import connection as conn_mod  # noqa: F401  (fills the table)
    from mtlsdemo.handshake import core as core_mod

    reached: set[tuple[str, str]] = set()
    original = dict(core_mod.HANDLERS)
    mutating = [False]

    def recording(key, handler):
        def run(self, *args):
            if mutating[0]:
                reached.add((key[0], key[1].name))
            return handler(self, *args)

        return run

    monkeypatch.setattr(core_mod, "HANDLERS", {k: recording(k, h) for k, h in original.items()})
    rng = random.Random(20261127)
    reasons: dict[str, int] = {}
    # the full handshake (with its NewSessionTicket), then a resumed one
    runs = [(i, False, f) for i, f in enumerate(FLIGHTS)]
    runs += [(i, True, f) for i, f in enumerate(RESUMED_FLIGHTS)]
    for i, resumed, (_receiver, flight) in runs:
        flights = RESUMED_FLIGHTS if resumed else FLIGHTS
        for _ in range(int(__import__("os").environ.get("MTLSDEMO_FUZZ_PER_FLIGHT", "80"))):
            b = bytearray(flight)
            op = rng.choice(["flip", "flip", "set", "insert", "delete", "truncate"])
            # half the time aim at the tail, where each flight's last message (often
            # Finished) lives, so the last handler of a flight gets mutated input too
            pos = (
                rng.randrange(len(b))
                if rng.random() < 0.5
                else max(0, len(b) - 1 - rng.randrange(64))
            )
            if op == "flip":
                b[pos] ^= 1 << rng.randrange(8)
            elif op == "set":
                b[pos] = rng.randrange(256)
            elif op == "insert":
                b[pos:pos] = rng.randbytes(rng.randint(1, 8))
            elif op == "delete":
                del b[pos : pos + rng.randint(1, 8)]
            else:
                del b[pos:]
            c, s = pair(resumed)
            c.start()
            c.data_to_send()
            outcome = "success"
            try:
                for j, (rcv, data) in enumerate(flights):
                    mutating[0] = j == i
                    (s if rcv == "server" else c).receive_data(bytes(b) if j == i else data)
            except ProtocolError as e:
                outcome = e.reason.value
            finally:
                mutating[0] = False
            assert outcome != "internal_error", (i, op, pos)
            reasons[outcome] = reasons.get(outcome, 0) + 1
    assert reached == {(role, t.name) for role, t in original}, sorted(reached)
    # the deep reasons, not only decode errors at the first flight
    assert {"bad_finished", "bad_signature", "decrypt_error", "decode_error"} <= reasons.keys(), (
        reasons
    )
