"""An HTTP server whose threads and waits are bounded, for the live page under load.

``ThreadingHTTPServer`` gives every connection its own thread for as long as it stays open
(200 idle connections: 156 threads, held forever). Here a connection waits without a thread
until its request line and headers have arrived whole (looked at with MSG_PEEK; at most
``MAX_WAITING`` wait, each for at most ``IDLE`` seconds, so idle and trickling clients
hold no thread and are closed after their time); then one of ``WORKERS`` threads handles
it, within ``REQUEST_SECONDS`` for the request and ``TIMEOUT`` seconds per read or write
(a viewer that stops reading the stream is dropped). With every worker busy a new request
gets a 503 at once. The page itself needs one long-lived stream and short status
requests, so it keeps being served.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import HTTPServer

WORKERS = 16
MAX_WAITING = 256
IDLE = 10.0
REQUEST_SECONDS = 10.0
TIMEOUT = 10.0
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n")


class BoundedServer(HTTPServer):
    """See the module docstring; limits are instance attributes (tests shorten them)."""

    workers, max_waiting, idle, request_seconds, timeout_s = (
        WORKERS, MAX_WAITING, IDLE, REQUEST_SECONDS, TIMEOUT)
    request_queue_size = 128  # the listen backlog: a burst of connections is not dropped

    def __init__(self, address, handler) -> None:
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="netscope-live-http")
        self._busy = 0
        self._lock = threading.Lock()
        self._waiting: dict[socket.socket, tuple[object, float]] = {}
        self._reading: dict[socket.socket, float] = {}  # request deadlines
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stopping = threading.Event()
        self._waiter = threading.Thread(target=self._wait_loop, name="netscope-live-waiter",
                                        daemon=True)
        self._waiter.start()

    def process_request(self, request, client_address) -> None:
        """Called by serve_forever for each accepted connection: park it until it speaks."""
        with self._lock:
            if len(self._waiting) >= self.max_waiting:
                self._drop(self._oldest())
            self._waiting[request] = (client_address, time.monotonic())
            self._selector.register(request, selectors.EVENT_READ)
        self._wake_w.send(b"\0")

    def _oldest(self) -> socket.socket:
        return min(self._waiting, key=lambda s: self._waiting[s][1])

    def _drop(self, sock: socket.socket) -> None:
        self._waiting.pop(sock, None)
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass  # already moved to the trickling set
        self.shutdown_request(sock)

    def _wait_loop(self) -> None:
        trickling: set[socket.socket] = set()  # spoke, but not a whole request yet
        while not self._stopping.is_set():
            events = self._selector.select(timeout=0.1)
            ready = []
            with self._lock:
                for key, _ in events:
                    if key.fileobj is self._wake_r:
                        self._wake_r.recv(4096)
                    elif key.fileobj in self._waiting:
                        self._selector.unregister(key.fileobj)
                        trickling.add(key.fileobj)
                for sock in list(trickling):
                    state = _request_state(sock)
                    if state != "partial":
                        trickling.discard(sock)
                        address, _ = self._waiting.pop(sock)
                        if state == "whole":
                            ready.append((sock, address))
                        else:
                            self.shutdown_request(sock)
                now = time.monotonic()
                for sock in [s for s, (_, t) in self._waiting.items() if now - t > self.idle]:
                    trickling.discard(sock)
                    self._drop(sock)
                self._cut_late(now)
            for sock, address in ready:
                self._hand_over(sock, address)

    def _hand_over(self, sock: socket.socket, address) -> None:
        with self._lock:
            full = self._busy >= self.workers
            if not full:
                self._busy += 1
        if full:
            try:
                sock.settimeout(1.0)
                sock.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(sock)
            return
        self._pool.submit(self._serve, sock, address)

    def _serve(self, sock: socket.socket, address) -> None:
        sock.settimeout(self.timeout_s)
        with self._lock:
            self._reading[sock] = time.monotonic() + self.request_seconds
        try:
            self.finish_request(sock, address)
        except Exception:  # noqa: BLE001 - reported as one line by handle_error
            self.handle_error(sock, address)
        finally:
            self.request_read(sock)
            self.shutdown_request(sock)
            with self._lock:
                self._busy -= 1

    def request_read(self, sock: socket.socket) -> None:
        """The request line and headers have arrived (the handler says so): lift the
        request deadline."""
        with self._lock:
            self._reading.pop(sock, None)

    def _cut_late(self, now: float) -> None:
        """End the connections whose request did not arrive whole in time (their reads
        then fail and their worker is freed)."""
        for sock in [s for s, deadline in self._reading.items() if now > deadline]:
            self._reading.pop(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def server_close(self) -> None:
        if not hasattr(self, "_stopping"):  # the bind failed before our state existed
            super().server_close()
            return
        self._stopping.set()
        self._waiter.join(timeout=5)
        with self._lock:
            for sock in list(self._waiting):
                self._drop(sock)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().server_close()


HEADERS_MOST = 65536


def _request_state(sock: socket.socket) -> str:
    """'whole' once the request line and headers have arrived (or too many bytes for
    headers: the handler answers that), 'partial' while they trickle in, 'gone' when the
    client left; read with MSG_PEEK, so the handler still reads everything."""
    try:
        sock.setblocking(False)
        data = sock.recv(HEADERS_MOST, socket.MSG_PEEK)
    except BlockingIOError:
        return "partial"
    except OSError:
        return "gone"
    finally:
        try:
            sock.setblocking(True)
        except OSError:
            pass
    if not data:
        return "gone"
    return "whole" if b"\r\n\r\n" in data or len(data) >= HEADERS_MOST else "partial"
