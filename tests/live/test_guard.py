"""The live page against other web sites: token, Host (DNS rebinding) and Origin checks on
every route, security headers, and quiet handling of viewers that vanish mid-response."""

import http.client
import socket
import struct
import time

import numpy as np
import pytest

from netscope.vision.live.guard import Guard, exposed_warning
from netscope.vision.live.web import WebSink

ROUTES = [("GET", "/"), ("GET", "/frame.jpg"), ("GET", "/status"), ("GET", "/stream"),
          ("POST", "/key?k=q"), ("POST", "/key?k=s"), ("GET", "/nothing")]


class FakeView:
    """What the web sink needs of a LiveView, with every key press recorded."""

    mode, layer, paused = "heatmap", "_blocks.2", False

    def __init__(self):
        self.pressed = []

    def handle_key(self, key):
        self.pressed.append(key)
        return key != "q"


@pytest.fixture
def web():
    sink = WebSink(FakeView(), "127.0.0.1", 0)
    sink(np.zeros((24, 32, 3), np.uint8))  # one frame, so /frame.jpg has something
    yield sink
    sink.close()


def request(web, method, path, headers, token=True, timeout=5.0):
    """(status, headers, first bytes of the body) for one raw request."""
    host, port = web.server.server_address[:2]
    if token:
        path += ("&" if "?" in path else "?") + f"token={web.guard.token}"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.putrequest(method, path, skip_host=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read(200) if resp.status != 200 or path.split("?")[0] != "/stream" else b""
    conn.close()
    return resp.status, resp.headers, body


def own_host(web):
    return f"127.0.0.1:{web.server.server_address[1]}"


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_route_needs_the_token(web, method, path):
    status, _, body = request(web, method, path, {"Host": own_host(web)}, token=False)
    assert status == 403 and b"token" in body
    assert web.view.pressed == [] and web.keys.empty()


@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize("host", ["attacker.example:{port}", "attacker.example",
                                  "127.0.0.1:1", "localhost.attacker.example:{port}", ""])
def test_foreign_host_header_is_refused_even_with_the_token(web, method, path, host):
    """DNS rebinding: a hostile name re-pointed at 127.0.0.1 must not read frames."""
    host = host.format(port=web.server.server_address[1])
    status, _, body = request(web, method, path, {"Host": host} if host else {})
    assert status == 403 and b"not this server" in body
    assert web.keys.empty()


@pytest.mark.parametrize("origin", ["http://attacker.example", "http://127.0.0.1:1",
                                    "null", "https://127.0.0.1:{port}"])
def test_cross_origin_key_press_is_refused_even_with_the_token(web, origin):
    origin = origin.format(port=web.server.server_address[1])
    for key in "qs":
        status, _, body = request(web, "POST", f"/key?k={key}",
                                  {"Host": own_host(web), "Origin": origin})
        assert status == 403 and b"not allowed" in body
    status, _, _ = request(web, "GET", "/frame.jpg",
                           {"Host": own_host(web), "Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _, _ = request(web, "GET", "/frame.jpg",
                           {"Host": own_host(web), "Sec-Fetch-Site": "same-site"})
    assert status == 403  # another port of 127.0.0.1 is same-site, not same-origin
    assert web.keys.empty()


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}"])
def test_own_page_works_with_token_host_and_origin(web, host):
    host = host.format(port=web.server.server_address[1])
    own = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    status, headers, body = request(web, "GET", "/", {"Host": host, "Sec-Fetch-Site": "none"})
    assert status == 200 and b"<!doctype html>" in body
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'nonce-" in csp
    assert "unsafe-inline" not in csp
    status, headers, body = request(web, "GET", "/frame.jpg", {"Host": host})
    assert status == 200 and body[:2] == b"\xff\xd8"
    assert headers["Cache-Control"] == "no-store"
    status, _, _ = request(web, "POST", "/key?k=n", own)
    assert status == 200 and web.keys.get_nowait() == "n"


@pytest.mark.parametrize("method, path", ROUTES)
def test_security_headers_on_every_response(web, method, path):
    for token in (True, False):
        _, headers, _ = request(web, method, path, {"Host": own_host(web)}, token=token)
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_the_token_is_secret_and_per_run():
    a, b = WebSink(FakeView(), "127.0.0.1", 0), WebSink(FakeView(), "127.0.0.1", 0)
    try:
        assert a.guard.token != b.guard.token and len(a.guard.token) >= 32
        assert a.url.endswith(f"/?token={a.guard.token}")
    finally:
        a.close()
        b.close()


def test_guard_names():
    g = Guard("127.0.0.1", 8765, token="t")
    assert g.host_ok("127.0.0.1:8765") and g.host_ok("localhost:8765")
    assert g.host_ok("[::1]:8765") and not g.host_ok("[::1]:8766")
    assert not g.host_ok("evil.example:8765") and not g.host_ok(None)
    assert not g.host_ok("127.0.0.1:notaport")
    assert g.check("/?token=t", {"Host": "localhost:8765"}) is None
    assert "token" in g.check("/?token=u", {"Host": "localhost:8765"})
    assert g.check("/", {"Host": "localhost:8765", "X-Netscope-Token": "t"}) is None


def test_exposed_host_warns():
    assert exposed_warning("127.0.0.1") is None and exposed_warning("localhost") is None
    assert "reachable from the network" in exposed_warning("0.0.0.0")


def test_client_that_resets_mid_response_prints_nothing(web, capfd):
    """22 tracebacks were printed for this before; a vanished viewer is normal."""
    host, port = web.server.server_address[:2]
    big = np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    web(big)  # a large frame, so the reset lands while the server is still writing
    for path in ("/frame.jpg", "/stream", "/"):
        for _ in range(5):
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(f"GET {path}?token={web.guard.token} HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{port}\r\n\r\n".encode())
            sock.recv(10)
            sock.close()  # linger 0: the kernel sends RST
        web(big)
    time.sleep(0.5)
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.count("\n") <= 1


def test_the_page_is_served_under_200_connections(monkeypatch):
    """200 idle and 20 trickling loopback connections: the server's threads stay bounded
    (one pool, no thread per connection), the real client still gets its status and its
    stream, and idle and slow connections are closed after their time."""
    import threading

    from netscope.vision.live import bounded

    monkeypatch.setattr(bounded.BoundedServer, "idle", 1.5)
    monkeypatch.setattr(bounded.BoundedServer, "request_seconds", 1.5)
    before = threading.active_count()
    sink = WebSink(FakeView(), "127.0.0.1", 0)
    sink(np.zeros((24, 32, 3), np.uint8))
    host, port = sink.server.server_address[:2]
    idle, slow = [], []
    try:
        for _ in range(200):
            idle.append(socket.create_connection((host, port), timeout=5))
        for _ in range(20):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            slow.append(s)
        time.sleep(0.3)
        threads = threading.active_count() - before
        assert threads <= bounded.WORKERS + 3, threads
        status, _, body = request(sink, "GET", "/status", {"Host": own_host(sink)})
        assert status == 200 and b'"mode": "heatmap"' in body
        status, headers, _ = request(sink, "GET", "/stream", {"Host": own_host(sink)})
        assert status == 200 and headers["Content-Type"].startswith("multipart/")
        time.sleep(2.5)  # past the idle and request limits
        for s in idle[:5] + slow[:5]:
            s.settimeout(2)
            assert s.recv(100) == b""  # closed by the server
        assert threading.active_count() - before <= bounded.WORKERS + 3
    finally:
        for s in idle + slow:
            s.close()
        sink.close()


def test_a_port_in_use_is_said_with_another_to_try(web):
    """Another program (here a second page) on the port: one clear error, no traceback
    from a half-built server."""
    from netscope.errors import NetscopeError

    port = web.server.server_address[1]
    with pytest.raises(NetscopeError, match=f"port {port} on 127.0.0.1 is taken by another "
                                            f"program; choose another \\(--port {port + 1}"):
        WebSink(FakeView(), "127.0.0.1", port)
