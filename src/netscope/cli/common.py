"""Helpers shared by the command groups: progress lines."""

from __future__ import annotations

import sys
import time


def progress_printer(quiet: bool):
    start = time.perf_counter()

    def report(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return report


def notice(msg: str) -> None:
    """A line the user must see even with --quiet (results replaced, and the like)."""
    print(f"netscope: {msg}", file=sys.stderr, flush=True)


class Heartbeat:
    """A progress printer that is never silent for long: inside ``with``, when no message
    came for ``every`` seconds, it repeats the last one with the time that step has taken
    (a 60-second Ablation-CAM or report step shows that it is still working)."""

    def __init__(self, say, every: float = 10.0, first: str = "working") -> None:
        import threading

        self.say, self.every = say, every
        self.last, self.since = first, time.perf_counter()  # ``first``: said only if slow
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name="netscope-heartbeat")

    def __call__(self, msg: str) -> None:
        self.last, self.since = msg, time.perf_counter()
        self.say(msg)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            quiet_for = time.perf_counter() - self.since
            if quiet_for >= self.every:
                self.say(f"{self.last} (still working, {quiet_for:.0f} s)")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
