"""Writing the overlaid stream to a video file, atomically (temp file renamed on close).

A video has one frame size, fixed by the first frame; later frames of another size (a
folder of photos, a camera that changes resolution) are scaled to fit and centred on
black, because video writers silently drop frames whose size differs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from netscope.errors import NetscopeError
from netscope.files.atomic import publish
from netscope.vision.live.opencv import opencv


class Recorder:
    """A sink: ``recorder(frame)`` appends an RGB frame; ``close()`` publishes the file."""

    def __init__(self, path: str | Path, fps: float = 15.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer = None
        self.frames = 0
        self.size: tuple[int, int] = (0, 0)  # (height, width) of the video, from frame 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=self.path.suffix or ".mp4")
        os.close(fd)
        self._tmp = Path(tmp)

    def __call__(self, frame: np.ndarray) -> bool:
        cv2 = opencv()
        if self._writer is None:
            h, w = self.size = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix != ".avi" else "MJPG"))
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise NetscopeError(f"{self.path}: OpenCV cannot write this video format; "
                                    f"use .mp4 or .avi.")
        self._writer.write(cv2.cvtColor(fit(frame, self.size), cv2.COLOR_RGB2BGR))
        self.frames += 1
        return True

    def close(self) -> Path | None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self.frames:
                publish(self._tmp, self.path)
                return self.path
        if self._tmp.exists():
            self._tmp.unlink()
        return None


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
