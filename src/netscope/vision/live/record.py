"""Writing the overlaid stream to a video file that plays at the speed it was made, and
survives a kill.

Rate: a video's frame rate is fixed in its header, but live mode produces frames as fast
as the model allows (8.7 fps where a camera gives 15), so the file would play too fast.
Frames are kept for a short segment (about 2 s), then written as a closed segment file at
the rate measured over it; ``close`` joins the segments into the file at the rate measured
over the whole recording, or at ``fps`` when one is given (a video file processed frame by
frame keeps its own rate).

Kills: segments live in a hidden folder beside the target (``.NAME.parts``), each one
written atomically, so ``kill -9`` loses at most the segment being filled. The next
recorder for the same file joins what a killed run left into ``NAME-recovered.EXT`` first
(``recovered`` says where), then records afresh.

Size: a video has one frame size, fixed by the first frame; later frames of another size
(a folder of photos, a camera that changes resolution) are scaled to fit and centred on
black, because video writers silently drop frames whose size differs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from netscope.errors import NetscopeError
from netscope.files.atomic import publish
from netscope.vision.live.opencv import opencv

SEGMENT_SECONDS = 2.0
SEGMENT_BYTES = 128 << 20  # a 4K stream closes segments sooner, so memory stays bounded


class Recorder:
    """A sink: ``recorder(frame)`` appends an RGB frame; ``close()`` publishes the file."""

    def __init__(self, path: str | Path, fps: float | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi"):
            raise NetscopeError(f"{self.path}: record to a .mp4 or .avi file (the formats "
                                f"OpenCV writes everywhere).")
        self.fps, self.clock = fps, clock
        self.frames = 0
        self.size: tuple[int, int] = (0, 0)  # (height, width) of the video, from frame 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parts = self.path.parent / f".{self.path.name}.parts"
        self.recovered = recover(self.path)  # what a killed run left, joined; or None
        self.parts.mkdir()
        self._pending: list[np.ndarray] = []
        self._times: list[float] = []  # arrival of every frame, for the measured rate
        self._segments = 0

    def __call__(self, frame: np.ndarray) -> bool:
        if not self._pending and not self.frames:
            self.size = frame.shape[:2]
        self._pending.append(fit(frame, self.size).copy())
        self._times.append(self.clock())
        self.frames += 1
        start = self._times[-len(self._pending)]
        if self._times[-1] - start >= SEGMENT_SECONDS or \
                len(self._pending) * self._pending[0].nbytes >= SEGMENT_BYTES:
            self._flush()
        return True

    def rate(self) -> float:
        """Frames per second as recorded: the given rate, else the measured one."""
        return self.fps or measured_rate(self._times)

    def _flush(self) -> None:
        if not self._pending:
            return
        times = self._times[-len(self._pending):]
        name = self.parts / f"seg-{self._segments:05d}{self._suffix()}"
        _write_video(name, self._pending, self.fps or measured_rate(times, self.rate()))
        self._segments += 1
        self._pending = []

    def _suffix(self) -> str:
        return self.path.suffix.lower()

    def close(self) -> Path | None:
        """Join the segments into the file (atomically); None when nothing was recorded."""
        self._flush()
        written = None
        segments = sorted(self.parts.glob("seg-*")) if self.parts.is_dir() else []
        if segments:
            written = join_segments(segments, self.path, self.rate())
        shutil.rmtree(self.parts, ignore_errors=True)
        return written


def measured_rate(times: list[float], fallback: float = 15.0) -> float:
    """Frames per second from arrival times: (frames - 1) over the time they spanned."""
    if len(times) < 2 or times[-1] <= times[0]:
        return fallback
    return (len(times) - 1) / (times[-1] - times[0])


def recover(path: Path) -> Path | None:
    """Join the closed segments a killed recorder left beside ``path`` into
    ``NAME-recovered.EXT`` (at their mean rate); the folder is removed either way."""
    parts = path.parent / f".{path.name}.parts"
    if not parts.is_dir():
        return None
    segments = sorted(parts.glob("seg-*"))
    done = None
    if segments:
        target = path.with_name(f"{path.stem}-recovered{path.suffix}")
        done = join_segments(segments, target, _mean_rate(segments))
    shutil.rmtree(parts, ignore_errors=True)
    return done


def _mean_rate(segments: list[Path]) -> float:
    cv2 = opencv()
    rates, counts = [], []
    for seg in segments:
        cap = cv2.VideoCapture(str(seg))
        rates.append(cap.get(cv2.CAP_PROP_FPS) or 15.0)
        counts.append(max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 1))
        cap.release()
    return float(np.average(rates, weights=counts))


def join_segments(segments: list[Path], target: Path, fps: float) -> Path | None:
    """One video at ``fps`` from the segments' frames in order, written atomically."""
    cv2 = opencv()
    frames = []
    for seg in segments:
        cap = cv2.VideoCapture(str(seg))
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        cap.release()
    if not frames:
        return None
    _write_video(target, frames, fps)
    return target


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """The frames (RGB, one size) as a closed video file at ``path``, atomically."""
    cv2 = opencv()
    suffix = path.suffix.lower()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(tmp, fourcc, float(fps), (w, h))
    try:
        if not writer.isOpened():
            raise NetscopeError(f"{path}: OpenCV cannot write this video format; use .mp4 "
                                f"or .avi.")
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        publish(tmp, path)
    finally:
        writer.release()
        if os.path.exists(tmp):
            os.remove(tmp)


def fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` scaled to fit (height, width) ``size`` with its aspect kept, centred on
    black; unchanged when it already has that size."""
    h, w = size
    fh, fw = frame.shape[:2]
    if (fh, fw) == (h, w):
        return frame
    scale = min(h / fh, w / fw)
    nh, nw = max(1, round(fh * scale)), max(1, round(fw * scale))
    small = opencv().resize(frame, (nw, nh), interpolation=opencv().INTER_AREA)
    out = np.zeros((h, w, 3), np.uint8)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[top:top + nh, left:left + nw] = small
    return out
