"""Threads and the newest-frame slot: capture never waits for inference, and inference
always takes the newest frame (stale ones are dropped and counted)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    index: int
    captured: float  # time.perf_counter() when read
    image: np.ndarray  # RGB uint8


class LatestSlot:
    """A one-item mailbox. ``put`` replaces an unread item (a drop) unless ``block`` is set,
    in which case it waits for the reader (offline processing of every frame)."""

    def __init__(self, block: bool = False) -> None:
        self.block = block
        self._cond = threading.Condition()
        self._item: Frame | None = None
        self.closed = False
        self.dropped = 0

    def put(self, item: Frame) -> None:
        with self._cond:
            if self.block:
                while self._item is not None and not self.closed:
                    self._cond.wait()
            elif self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, or None once closed and empty (or on timeout)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self.closed, timeout):
                return None
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Reader(threading.Thread):
    """Reads a source into a slot until the source ends or ``stop`` is set."""

    def __init__(self, source, slot: LatestSlot, max_frames: int | None = None,
                 fps: float | None = None) -> None:
        super().__init__(name="netscope-live-reader", daemon=True)
        self.source, self.slot, self.max_frames, self.fps = source, slot, max_frames, fps
        self.stop = threading.Event()
        self.error: Exception | None = None
        self.count = 0

    def run(self) -> None:
        try:
            start = time.perf_counter()
            while not self.stop.is_set():
                if self.max_frames is not None and self.count >= self.max_frames:
                    break
                image = self.source.read()
                if image is None:
                    break
                if self.fps:  # pace a file to real time
                    delay = start + self.count / self.fps - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                self.slot.put(Frame(self.count, time.perf_counter(), image))
                self.count += 1
        except Exception as exc:  # reported by the caller, never lost in a thread
            self.error = exc
        finally:
            self.slot.close()


@dataclass
class Stats:
    processed: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    reason: str = "stopped"  # "source ended", "frame limit", "quit" or "stopped"

    @property
    def fps(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def median_latency(self) -> float:
        return statistics.median(self.latencies) if self.latencies else 0.0


def run(source, process: Callable[[Frame], np.ndarray], sinks: list[Callable[[np.ndarray], bool]],
        max_frames: int | None = None, block: bool = False, fps: float | None = None,
        should_stop: Callable[[], bool] = lambda: False) -> Stats:
    """Read, process and hand results to sinks until the source ends, ``max_frames`` are
    processed, a sink returns False (quit), or ``should_stop()``. Always joins the reader."""
    slot = LatestSlot(block)
    reader = Reader(source, slot, fps=fps)
    stats = Stats()
    start = time.perf_counter()
    reader.start()
    try:
        while not should_stop():
            frame = slot.take(timeout=0.5)
            if frame is None:
                if slot.closed:
                    stats.reason = "source ended"
                    break
                continue
            out = process(frame)
            stats.latencies.append(time.perf_counter() - frame.captured)
            stats.processed += 1
            if not all(sink(out) for sink in sinks):
                stats.reason = "quit"
                break
            if max_frames is not None and stats.processed >= max_frames:
                stats.reason = "frame limit"
                break
    finally:
        reader.stop.set()
        slot.close()
        reader.join(timeout=5)
        source.close()
        stats.seconds = time.perf_counter() - start
        stats.dropped = slot.dropped
    if reader.error is not None:
        raise reader.error
    return stats
