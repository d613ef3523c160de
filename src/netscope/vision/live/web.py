"""A local web page as a live-mode sink: the stream as MJPEG plus buttons for the keys.

It serves exactly five routes (page, stream, latest frame, status, key) and no files, so
nothing else on disk is reachable; it binds to 127.0.0.1 unless told otherwise, and every
request must pass ``guard.Guard`` (token, Host, Origin). Key presses are queued and applied
by the processing loop between frames, so the view is never changed while it renders. A
viewer that disconnects mid-response is normal and logs nothing.
"""

from __future__ import annotations

import html
import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import numpy as np

from netscope.errors import NetscopeError
from netscope.vision.live.bounded import BoundedServer
from netscope.vision.live.guard import (
    SECURITY_HEADERS,
    Guard,
    content_policy,
    new_token,
)
from netscope.vision.live.opencv import opencv
from netscope.vision.live.view import KEYS, LiveView


def page(token: str, nonce: str) -> str:
    """The control page; ``token`` goes into every request it makes, ``nonce`` tags its one
    script and style for the Content-Security-Policy (no inline handlers)."""
    buttons = "".join(
        f'<button id="key-{"space" if k == " " else k}" data-key="{html.escape(k)}">'
        f"{html.escape(label)} ({'space' if k == ' ' else k})</button>"
        for k, label in KEYS.items())
    keys = json.dumps("".join(KEYS))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>netscope live</title>
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;margin:1em}}button{{margin:.2em}}
img{{max-width:100%;border:1px solid #ccc}}</style></head><body>
<h1>netscope live</h1><div>{buttons}</div><p id="status">connecting...</p>
<img id="stream" alt="live stream">
<script nonce="{nonce}">
const token = {json.dumps(token)};
const q = '?token=' + encodeURIComponent(token);
document.getElementById('stream').src = '/stream' + q;
async function key(k) {{
  await fetch('/key' + q + '&k=' + encodeURIComponent(k), {{method: 'POST'}});
  setTimeout(status, 300); }}
async function status() {{
  try {{ const s = await (await fetch('/status' + q)).json();
    document.getElementById('status').textContent =
      `mode ${{s.mode}}, layer ${{s.layer}}, ${{s.frames}} frames` + (s.paused ? ', paused' : '');
  }} catch (e) {{ document.getElementById('status').textContent = 'stream ended'; }} }}
setInterval(status, 1000); status();
for (const b of document.querySelectorAll('button[data-key]'))
  b.addEventListener('click', () => key(b.dataset.key));
document.addEventListener('keydown', e => {{ if ({keys}.includes(e.key)) key(e.key); }});
</script></body></html>"""


class WebSink:
    """``notify`` receives one-line messages (a closed tab pauses the view; a new one resumes)."""

    def __init__(self, view: LiveView, host: str = "127.0.0.1", port: int = 8765,
                 notify=None) -> None:
        self.view = view
        self.notify = notify or (lambda message: None)
        self.viewers = 0
        self._had_viewer = False
        self._auto_paused = False
        self.keys: queue.Queue[str] = queue.Queue()
        self.frames = 0
        self._jpeg: bytes | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._quit = False
        try:
            self.server = QuietServer((host, port), self._handler())
        except OSError as exc:
            import errno

            if exc.errno == errno.EADDRINUSE:
                raise NetscopeError(f"port {port} on {host} is taken by another program; "
                                    f"choose another (--port {port + 1}, or --port 0 for any "
                                    f"free one).") from None
            raise NetscopeError(f"cannot serve the live page on {host}:{port} "
                                f"({exc.strerror or exc}).") from None
        bound, real_port = self.server.server_address[:2]
        self.guard = Guard(host, real_port)
        shown = "127.0.0.1" if bound in ("0.0.0.0", "::") else bound
        self.base = f"http://{shown}:{real_port}/"
        self.url = f"{self.base}?token={self.guard.token}"  # what the user opens
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="netscope-live-web", daemon=True)
        self._thread.start()

    def __call__(self, frame: np.ndarray) -> bool:
        cv2 = opencv()
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        with self._cond:
            self._jpeg = buf.tobytes() if ok else self._jpeg
            self.frames += 1
            self._cond.notify_all()
        while not self.keys.empty():
            if not self.view.handle_key(self.keys.get_nowait()):
                self._quit = True
        self._follow_viewers()
        return not self._quit

    def _follow_viewers(self) -> None:
        """Pause while nobody watches (after someone has), resume when a tab comes back."""
        if self.viewers == 0 and self._had_viewer and not self.view.paused:
            self.view.paused = self._auto_paused = True
            self.notify("browser tab closed: paused; open the page again to resume")
        elif self.viewers > 0 and self._auto_paused:
            self.view.paused = self._auto_paused = False
            self.notify("viewer connected: resumed")

    def latest(self, after: int = -1, timeout: float = 5.0) -> tuple[int, bytes | None]:
        with self._cond:
            self._cond.wait_for(lambda: self.frames > after or self._closed, timeout)
            return self.frames, self._jpeg

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def _handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def parse_request(self) -> bool:
                ok = super().parse_request()
                self.server.request_read(self.request)  # arrived in time
                return ok

            def _headers(self, code: int, ctype: str, length: int | None = None,
                         extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
                    self.send_header(name, value)
                self.end_headers()

            def _send(self, code: int, body: bytes, ctype: str,
                      extra: dict[str, str] | None = None) -> None:
                self._headers(code, ctype, len(body), extra)
                self.wfile.write(body)

            def _allowed(self) -> bool:
                reason = sink.guard.check(self.path, self.headers)
                if reason is not None:
                    self._send(403, f"forbidden: {reason}".encode(), "text/plain")
                return reason is None

            def do_GET(self) -> None:
                if not self._allowed():
                    return
                path = urlparse(self.path).path
                if path == "/":
                    nonce = new_token()
                    self._send(200, page(sink.guard.token, nonce).encode(),
                               "text/html; charset=utf-8",
                               {"Content-Security-Policy": content_policy(nonce)})
                elif path == "/frame.jpg":
                    _, jpeg = sink.latest(after=0)
                    if jpeg is None:
                        self._send(503, b"no frame yet", "text/plain")
                    else:
                        self._send(200, jpeg, "image/jpeg")
                elif path == "/status":
                    v = sink.view
                    body = json.dumps({"mode": v.mode, "layer": v.layer, "paused": v.paused,
                                       "frames": sink.frames, "ended": sink._closed})
                    self._send(200, body.encode(), "application/json")
                elif path == "/stream":
                    self._stream()
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                if not self._allowed():
                    return
                parsed = urlparse(self.path)
                if parsed.path != "/key":
                    self._send(404, b"not found", "text/plain")
                    return
                k = parse_qs(parsed.query).get("k", [""])[0]
                if k not in KEYS:
                    self._send(400, f"unknown key {k!r}".encode(), "text/plain")
                    return
                sink.keys.put(k)
                self._send(200, b"ok", "text/plain")

            def _stream(self) -> None:
                self._headers(200, "multipart/x-mixed-replace; boundary=frame")
                seen = 0
                with sink._cond:
                    sink.viewers += 1
                    sink._had_viewer = True
                try:
                    while not sink._closed:
                        seen, jpeg = sink.latest(after=seen, timeout=1.0)
                        if jpeg is None:
                            continue
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                                         + jpeg + b"\r\n")
                except OSError:
                    pass  # the tab was closed
                finally:
                    with sink._cond:
                        sink.viewers -= 1

        return Handler


class QuietServer(BoundedServer):
    """A viewer that closes its tab or resets the connection mid-response is normal: no
    traceback. Anything else is one line on stderr, never a traceback. Threads and waits
    are bounded (``bounded``)."""

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # a vanished viewer, a timed-out or cut-off connection
        print(f"netscope: live page: request from {client_address[0]} failed: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
