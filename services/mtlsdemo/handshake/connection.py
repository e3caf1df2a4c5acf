"""The sans-I/O state machine for one side of an MTD/1 connection.

Feed it bytes with ``receive_data`` (b"" for EOF); it returns events and queues
bytes for ``data_to_send``. It never touches a socket, never reads a clock of its
own (the caller passes wall time for certificate checks and a monotonic clock for
phase timings) and raises ``ProtocolError`` for every failure, having queued the
alert for the peer first.

Flow (see docs/protocol.md):

    client                                  server
    ClientHello            ------>
                           <------          ServerHello
                                            Certificate
                                            ServerKeyShare        (ECDHE only)
                                            CertificateRequest
                                            CertificateVerify
    Certificate
    ClientKeyExchange
    CertificateVerify
    Finished               ------>
                           <------          Finished
    [application data]     <=====>          [application data]
"""

from __future__ import annotations

from mtlsdemo.handshake import kx  # noqa: F401  (tests patch kx through this module)
from mtlsdemo.handshake import messages as m
from mtlsdemo.handshake.core import HANDLERS
from mtlsdemo.handshake.server_side import ServerSide

T = m.HandshakeType


class Connection(ServerSide):
    """One side (``role``) of an MTD/1 connection: a state machine fed bytes
    (``receive_data``), returning events and queueing bytes (``data_to_send``)."""


HANDLERS.update(
    {
        ("client", T.SERVER_HELLO): Connection._on_client_server_hello,
        ("client", T.CERTIFICATE): Connection._on_client_certificate,
        ("client", T.SERVER_KEY_SHARE): Connection._on_client_server_key_share,
        ("client", T.CERTIFICATE_REQUEST): Connection._on_client_certificate_request,
        ("client", T.CERTIFICATE_VERIFY): Connection._on_client_certificate_verify,
        ("client", T.FINISHED): Connection._on_client_finished,
        ("client", T.NEW_SESSION_TICKET): Connection._on_client_new_session_ticket,
        ("server", T.CLIENT_HELLO): Connection._on_server_client_hello,
        ("server", T.CERTIFICATE): Connection._on_server_certificate,
        ("server", T.CLIENT_KEY_EXCHANGE): Connection._on_server_client_key_exchange,
        ("server", T.CERTIFICATE_VERIFY): Connection._on_server_certificate_verify,
        ("server", T.FINISHED): Connection._on_server_finished,
    }
)
