"""The OpenCV window sink's logic, with a stand-in for OpenCV's GUI calls (CI has no display;
the real window was checked by hand under Xvfb, see the notes)."""

import numpy as np

from netscope.vision.live import window as W
from netscope.vision.live.view import LiveView
from netscope.vision.models.zoo import load_model


class FakeGUI:
    WND_PROP_VISIBLE = 4
    WINDOW_AUTOSIZE = 1

    class error(Exception):
        pass

    def __init__(self, keys):
        self.keys, self.shown, self.visible, self.destroyed = list(keys), [], 1.0, []

    def imshow(self, title, img):
        self.shown.append(img.shape)

    def waitKey(self, ms):
        return self.keys.pop(0) if self.keys else -1

    def getWindowProperty(self, title, prop):
        return self.visible

    def destroyWindow(self, title):
        self.destroyed.append(title)


def test_keys_reach_the_view_and_q_quits(monkeypatch):
    view = LiveView(load_model(), "activations", "_blocks.2")
    gui = FakeGUI([ord("n"), -1, ord("m"), ord("q")])
    monkeypatch.setattr(W, "opencv", lambda: gui)
    sink = W.WindowSink(view)
    frame = np.zeros((20, 30, 3), np.uint8)
    assert sink(frame) and view.layer == "_blocks.3"
    assert sink(frame)
    assert sink(frame) and view.mode == "heatmap"
    assert not sink(frame)  # q
    sink.close()
    assert gui.shown == [(20, 30, 3)] * 4 and gui.destroyed == [W.TITLE]


def test_closing_the_window_stops(monkeypatch):
    view = LiveView(load_model(), "heatmap")
    gui = FakeGUI([])
    monkeypatch.setattr(W, "opencv", lambda: gui)
    sink = W.WindowSink(view)
    assert sink(np.zeros((4, 4, 3), np.uint8))
    gui.visible = 0.0  # the user closed the window
    assert not sink(np.zeros((4, 4, 3), np.uint8))


def test_no_display_means_no_window(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not W.window_available()
