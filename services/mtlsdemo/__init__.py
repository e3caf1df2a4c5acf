"""mtlsdemo: see every step of a mutual TLS handshake between two gRPC services."""

__version__ = "0.1.0"
