"""Writing the overlaid stream to a video file, atomically (temp file renamed on close)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from netscope.errors import NetscopeError
from netscope.vision.live.opencv import opencv


class Recorder:
    """A sink: ``recorder(frame)`` appends an RGB frame; ``close()`` publishes the file."""

    def __init__(self, path: str | Path, fps: float = 15.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer = None
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=self.path.suffix or ".mp4")
        os.close(fd)
        self._tmp = Path(tmp)

    def __call__(self, frame: np.ndarray) -> bool:
        cv2 = opencv()
        if self._writer is None:
            h, w = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix != ".avi" else "MJPG"))
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise NetscopeError(f"{self.path}: OpenCV cannot write this video format; "
                                    f"use .mp4 or .avi.")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1
        return True

    def close(self) -> Path | None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self.frames:
                os.replace(self._tmp, self.path)
                return self.path
        if self._tmp.exists():
            self._tmp.unlink()
        return None
