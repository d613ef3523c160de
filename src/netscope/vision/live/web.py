"""A local web page as a live-mode sink: the stream as MJPEG plus buttons for the keys.

It serves exactly five routes (page, stream, latest frame, status, key) and no files, so
nothing else on disk is reachable; it binds to 127.0.0.1 unless told otherwise. Key presses
are queued and applied by the processing loop between frames, so the view is never changed
while it renders.
"""

from __future__ import annotations

import html
import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np

from netscope.vision.live.opencv import opencv
from netscope.vision.live.view import KEYS, LiveView


def page() -> str:
    buttons = "".join(
        f'<button id="key-{"space" if k == " " else k}" onclick="key(\'{k}\')">'
        f"{html.escape(label)} ({'space' if k == ' ' else k})</button>"
        for k, label in KEYS.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>netscope live</title>
<style>body{{font-family:system-ui,sans-serif;margin:1em}}button{{margin:.2em}}
img{{max-width:100%;border:1px solid #ccc}}</style></head><body>
<h1>netscope live</h1><div>{buttons}</div><p id="status">connecting...</p>
<img id="stream" src="/stream" alt="live stream">
<script>
async function key(k) {{ await fetch('/key?k=' + encodeURIComponent(k), {{method: 'POST'}});
  setTimeout(status, 300); }}
async function status() {{
  try {{ const s = await (await fetch('/status')).json();
    document.getElementById('status').textContent =
      `mode ${{s.mode}}, layer ${{s.layer}}, ${{s.frames}} frames` + (s.paused ? ', paused' : '');
  }} catch (e) {{ document.getElementById('status').textContent = 'stream ended'; }} }}
setInterval(status, 1000); status();
document.addEventListener('keydown', e => {{ if ('npmsq '.includes(e.key)) key(e.key); }});
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
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}/"
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

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if path == "/":
                    self._send(200, page().encode(), "text/html; charset=utf-8")
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
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
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
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the tab was closed
                finally:
                    with sink._cond:
                        sink.viewers -= 1

        return Handler
