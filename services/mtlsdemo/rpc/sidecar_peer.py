"""Who calls a plaintext service behind its sidecar: the sidecar verified the peer
at the handshake and knows which of its connections to the app carries it; the
service asks its admin (``GET /app-peer?port=``) with the port the call came from.
A call that did not come through the sidecar (a local process dialling the app
port directly) has no identity: the policy then decides for "no SPIFFE ID"."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import grpc

log = logging.getLogger(__name__)


def peer_port(context: grpc.ServicerContext) -> int | None:
    """The caller's port from gRPC's peer string (``ipv4:127.0.0.1:54321``)."""
    peer = context.peer() or ""
    if not peer.startswith(("ipv4:", "ipv6:")):
        return None
    try:
        return int(peer.rsplit(":", 1)[1])
    except ValueError:
        return None


class SidecarPeers:
    """Asks the sidecar at ``admin`` (HOST:PORT) who is behind a connection."""

    def __init__(self, admin: str) -> None:
        self.admin = admin

    def principal(self, context: grpc.ServicerContext) -> str:
        port = peer_port(context)
        if port is None:
            return ""
        url = f"http://{self.admin}/app-peer?port={port}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(json.loads(r.read())["peer"])
        except urllib.error.HTTPError as e:
            if e.code != 404:
                log.warning("sidecar admin %s: /app-peer answered %d", self.admin, e.code)
            return ""
        except (OSError, ValueError, KeyError) as e:
            log.warning("sidecar admin %s: cannot ask who calls: %s", self.admin, e)
            return ""
