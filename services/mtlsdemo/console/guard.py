"""Who may drive the console: the page it served, and nobody else.

A page on any other website can make the user's browser send requests to
http://127.0.0.1:8080 — a form post or a `fetch` with `text/plain` needs no CORS
preflight — and a DNS-rebinding page can even read the answers. The break buttons
change the user's real CA (`break revoked` revokes real certificates), so:

- every request's Host must be one the console is reached by: an IP literal (a
  browser that typed an IP is on that origin, not a rebound name), `localhost`, the
  --listen host, or a name given with --allow-host (a Service or Ingress in front);
- a state-changing request must also carry `Content-Type: application/json` (a
  cross-origin page cannot send that without a preflight, which is never answered),
  an Origin, when present, of this very Host, and the per-start token that only the
  served page holds (compared in constant time).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

TOKEN_HEADER = "X-Mtlsdemo-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
_PORT = re.compile(r"(:[0-9]{1,5})?")


def host_name(host_header: str) -> str:
    """The name part of a Host header: `[::1]:8080` -> `::1`, `a.b:80` -> `a.b`; "" for
    anything that is not exactly host[:port] (RFC 9110 `Host`): `127.0.0.1:47080@evil`
    or `[127.0.0.1]evil` must not pass as the loopback address they start with."""
    h = host_header.strip().lower()
    if h.startswith("["):  # an IPv6 literal, then at most a port
        end = h.find("]")
        inner, rest = h[1:end], h[end + 1 :]
        ok = end > 0 and _PORT.fullmatch(rest) is not None and ":" in inner
        return inner if ok and is_ip_literal(inner) else ""
    if h.count(":") > 1:  # a bare IPv6 address (some clients send it unbracketed)
        return h if is_ip_literal(h) else ""
    name, _, port = h.partition(":")
    if (port and not port.isdigit()) or _NAME.fullmatch(name) is None:
        return ""
    return name


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    def __init__(self, listen_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        self.token = secrets.token_urlsafe(32)
        self.names = {"localhost", listen_host.lower(), *(h.lower() for h in allowed_hosts)}

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        name = host_name(host_header)
        return is_ip_literal(name) or name in self.names or name.endswith(".localhost")

    def refusal(self, r: web.Request) -> str | None:
        """Why this request is refused, or None."""
        host = r.headers.get("Host")
        if not self.host_allowed(host):
            return (
                f"console: Host {host!r} is not one this console is reached by (a guard "
                "against DNS rebinding); serve it under that name with --allow-host"
            )
        if r.method in SAFE_METHODS:
            return None
        origin = r.headers.get("Origin")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return f"console: Origin {origin!r} is another website; changes come from the page only"
        if r.content_type != "application/json":
            return "console: a change needs Content-Type: application/json"
        given = r.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return f"console: missing or wrong {TOKEN_HEADER} (the page served at / has it)"
        return None

    def middleware(self) -> Middleware:
        """The aiohttp middleware that answers a refused request with 403 and why."""

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            why = self.refusal(request)
            if why is not None:
                return web.json_response({"error": why}, status=403)
            return await handler(request)

        return guard
