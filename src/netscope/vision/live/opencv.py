"""OpenCV, imported on first use with an install hint (live mode is its only user)."""

from __future__ import annotations

import os

from netscope.errors import NetscopeError


def opencv():
    # OpenCV and FFmpeg print their own warnings for every camera that cannot be opened or
    # file that is not a video; netscope reports those itself, in one line
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import cv2
    except ImportError:
        raise NetscopeError("live mode needs OpenCV: pip install opencv-python-headless "
                            "(or opencv-python for a desktop window).") from None
    return cv2
