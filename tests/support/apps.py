"""Stand-in apps behind the sidecars: a TCP echo server and a gRPC echo server."""

from __future__ import annotations

import socket
import threading
from concurrent import futures

import grpc


class EchoServer:
    """Echoes every byte back; on EOF from the client, finishes echoing and
    half-closes too. Counts connections and bytes so tests can prove the app
    never saw a byte from a rejected peer."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.bytes = 0
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    with self.lock:
                        self.bytes += len(data)
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def _identity(x: bytes) -> bytes:
    return x


class GrpcEcho:
    """A gRPC server with Echo (unary) and Chunks (server streaming) on raw bytes."""

    def __init__(self) -> None:
        def echo(request: bytes, context) -> bytes:
            return request

        def chunks(request: bytes, context):
            n = int(request.decode())
            for i in range(n):
                yield bytes([i % 256]) * 65536

        handler = grpc.method_handlers_generic_handler(
            "test.Echo",
            {
                "Echo": grpc.unary_unary_rpc_method_handler(echo, _identity, _identity),
                "Chunks": grpc.unary_stream_rpc_method_handler(chunks, _identity, _identity),
            },
        )
        opts = [
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ]
        self.server = grpc.server(futures.ThreadPoolExecutor(8), handlers=[handler], options=opts)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0)


def grpc_echo_stub(port: int):
    opts = [
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20),
    ]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=opts)
    echo = channel.unary_unary(
        "/test.Echo/Echo", request_serializer=_identity, response_deserializer=_identity
    )
    chunks = channel.unary_stream(
        "/test.Echo/Chunks", request_serializer=_identity, response_deserializer=_identity
    )
    return channel, echo, chunks


class FlipRelay:
    """A man in the middle between two sidecars: relays TCP both ways and flips
    one bit in the first client-to-server application_data record (type 23)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.flipped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(a, b, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(b, a, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, tamper: bool) -> None:
        buf = bytearray()
        try:
            while data := src.recv(65536):
                if not tamper or self.flipped:
                    dst.sendall(data)
                    continue
                buf += data
                # walk whole records; flip inside the first application_data one
                out = bytearray()
                while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
                    n = 5 + int.from_bytes(buf[3:5], "big")
                    rec = bytearray(buf[:n])
                    del buf[:n]
                    if rec[0] == 23 and not self.flipped:
                        rec[10] ^= 0x01
                        self.flipped += 1
                    out += rec
                dst.sendall(bytes(out))
                if self.flipped and buf:
                    dst.sendall(bytes(buf))
                    buf.clear()
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
