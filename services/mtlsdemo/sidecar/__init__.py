"""The sidecar: an asyncio proxy that carries a local app's plaintext TCP through
the MTD/1 handshake and record layer to the peer's sidecar, enforcing identity,
hot-reloading certificates and exporting per-step handshake metrics."""
