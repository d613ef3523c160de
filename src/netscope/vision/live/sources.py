"""Frame sources: a camera, a video file, a folder of images, or a generated test pattern.
Every source yields RGB uint8 frames (H, W, 3) and returns None at its end."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netscope.errors import NetscopeError
from netscope.vision.live.opencv import opencv
from netscope.vision.models.images import IMAGE_SUFFIXES, load_image


class PatternSource:
    """A moving synthetic scene (bars, a disc, a gradient) for trying live mode anywhere."""

    def __init__(self, width: int = 640, height: int = 480, frames: int | None = None,
                 fps: float = 30.0) -> None:
        self.width, self.height, self.frames, self.n = width, height, frames, 0
        self.fps = fps  # like a camera: frames arrive in real time
        yy, xx = np.mgrid[0:height, 0:width]
        self._yy, self._xx = yy.astype(np.float32), xx.astype(np.float32)
        self.name = "test pattern"

    def read(self) -> np.ndarray | None:
        if self.frames is not None and self.n >= self.frames:
            return None
        t = self.n
        self.n += 1
        r = 127 + 127 * np.sin((self._xx + 4 * t) / 23.0)
        g = 255 * self._yy / self.height
        cx = self.width / 2 + self.width / 3 * np.cos(t / 15)
        cy = self.height / 2 + self.height / 3 * np.sin(t / 15)
        disc = ((self._xx - cx) ** 2 + (self._yy - cy) ** 2) < (self.height / 8) ** 2
        b = np.where(disc, 255.0, 60.0)
        return np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)

    def close(self) -> None:
        pass


class FolderSource:
    """The images of a folder in name order, each once."""

    def __init__(self, folder: Path) -> None:
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise NetscopeError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}).")
        self.i = 0
        self.name = str(folder)
        self.fps = None

    def read(self) -> np.ndarray | None:
        if self.i >= len(self.paths):
            return None
        path = self.paths[self.i]
        self.i += 1
        return (load_image(path) * 255).round().astype(np.uint8)

    def close(self) -> None:
        pass


class CaptureSource:
    """A camera index or a video file, read through OpenCV."""

    def __init__(self, target: int | Path) -> None:
        cv2 = opencv()
        self._cv2 = cv2
        self.cap = cv2.VideoCapture(target if isinstance(target, int) else str(target))
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        if not self.cap.isOpened():
            self.cap.release()
            if isinstance(target, int):
                raise NetscopeError(f"camera {target} cannot be opened: it does not exist or is "
                                    f"busy. Try another index, a video file, or --source "
                                    f"pattern.")
            raise NetscopeError(f"{target}: not a video OpenCV can read.")
        ok, frame = self.cap.read()
        if not ok:
            self.cap.release()
            raise NetscopeError(f"{self.name}: opened but gave no frame (corrupt or empty video, "
                                f"or a camera that is not delivering).")
        self._first: np.ndarray | None = frame
        file_fps = self.cap.get(cv2.CAP_PROP_FPS) if not isinstance(target, int) else 0
        self.fps = file_fps if file_fps and file_fps > 0 else None  # a file plays in real time

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            ok, frame = self.cap.read()
            if not ok:
                return None
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


def open_source(spec: str | int):
    """'pattern', a camera index ('0'), a folder of images, or a video file."""
    text = str(spec)
    if text == "pattern":
        return PatternSource()
    if text.isdigit():
        return CaptureSource(int(text))
    path = Path(text)
    if path.is_dir():
        return FolderSource(path)
    if not path.is_file():
        raise NetscopeError(f"{path}: no such video file or folder (sources: a camera index, "
                            f"a video file, a folder of images, or 'pattern').")
    return CaptureSource(path)
