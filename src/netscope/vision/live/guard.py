"""Who may talk to the live page: a camera stream must not be readable or steerable by the
other web sites open in the user's browser.

Three checks on every request, as Jupyter does for its server:
- a per-run secret token (in the page's URL, printed on the console), so a site that does
  not know it cannot press keys or read frames, even with the user's browser as a proxy;
- the Host header must name this server (localhost, an IP address, the bound host or this
  machine's name, with the right port), which defeats DNS rebinding, where a hostile
  domain is re-pointed at 127.0.0.1 to make its requests same-origin;
- requests a browser marks as coming from another origin (Origin header, or
  Sec-Fetch-Site other than same-origin/none) are refused, token or not.
The responses also forbid framing, sniffing and caching (:data:`SECURITY_HEADERS`).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def content_policy(nonce: str) -> str:
    """CSP for the page: its own nonce-tagged script and style, images and fetches from
    itself only, never inside a frame."""
    return (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'none'")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposed_warning(host: str) -> str | None:
    """The warning to print when the page is reachable from other machines."""
    if is_loopback(host):
        return None
    return (f"--host {host} makes the live page (the camera stream and its controls) "
            f"reachable from the network; anyone who can reach this machine and learns the "
            f"URL's token can watch. Use --host 127.0.0.1 (the default) unless you mean it.")


class Guard:
    """Decides whether one request may be served; ``check`` returns None or the reason."""

    def __init__(self, bound_host: str, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token or new_token()
        names = {"localhost", bound_host.lower()}
        if not is_loopback(bound_host):  # reachable by the machine's own names too
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names = names

    def host_ok(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        try:
            parts = urlsplit(f"//{host_header}")
            name, port = (parts.hostname or "").lower(), parts.port
        except ValueError:
            return False
        if port != self.port:
            return False
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name)  # an address cannot be re-pointed by DNS
            return True
        except ValueError:
            return False

    def token_ok(self, path: str, headers: Mapping[str, str]) -> bool:
        given = headers.get("X-Netscope-Token") or \
            parse_qs(urlsplit(path).query).get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def check(self, path: str, headers: Mapping[str, str]) -> str | None:
        host = headers.get("Host")
        if not self.host_ok(host):
            return f"host {host!r} is not this server"
        origin = headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            return f"requests from {origin} are not allowed"
        if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "cross-site requests are not allowed"
        if not self.token_ok(path, headers):
            return "missing or wrong token: open the URL printed on the console"
        return None
