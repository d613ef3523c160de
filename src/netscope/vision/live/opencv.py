"""OpenCV, imported on first use with an install hint (live mode is its only user)."""

from __future__ import annotations

from netscope.errors import NetscopeError


def opencv():
    try:
        import cv2
    except ImportError:
        raise NetscopeError("live mode needs OpenCV: pip install opencv-python-headless "
                            "(or opencv-python for a desktop window).") from None
    return cv2
