"""An OpenCV desktop window as a live-mode sink, with keys (see ``view.KEYS``)."""

from __future__ import annotations

import os

import numpy as np

from netscope.vision.live.opencv import opencv
from netscope.vision.live.view import LiveView

TITLE = "netscope live (n/p layer, m mode, space pause, s snapshot, q quit)"


def window_available() -> bool:
    """True where a display exists and this OpenCV build has GUI support."""
    if os.name != "nt" and not os.environ.get("DISPLAY") and not os.environ.get(
            "WAYLAND_DISPLAY"):
        return False
    cv2 = opencv()
    try:
        cv2.namedWindow("netscope-probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("netscope-probe")
        return True
    except cv2.error:
        return False


class WindowSink:
    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.cv2 = opencv()
        self.opened = False

    def __call__(self, frame: np.ndarray) -> bool:
        cv2 = self.cv2
        cv2.imshow(TITLE, frame[..., ::-1])
        self.opened = True
        key = cv2.waitKey(1) & 0xFF
        if key != 255 and not self.view.handle_key(chr(key)):
            return False
        return cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) >= 1  # closed: stop

    def close(self) -> None:
        if self.opened:
            self.cv2.destroyWindow(TITLE)
