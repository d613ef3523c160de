"""Live mode without a camera: generated videos, the test pattern, slow consumers."""

import os
import threading
import time

import cv2
import numpy as np
import pytest

from netscope.cli import main
from netscope.errors import NetscopeError
from netscope.vision.live import pipeline
from netscope.vision.live.pipeline import Frame, LatestSlot
from netscope.vision.live.record import Recorder
from netscope.vision.live.sources import FolderSource, PatternSource, open_source
from netscope.vision.live.view import CAM_METHODS, LiveView, tile
from netscope.vision.models.zoo import load_model


@pytest.fixture(scope="module")
def lite0():
    return load_model()


def make_video(path, frames=12, size=(160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
        writer.write(img)
    writer.release()
    return path


def no_reader_threads():
    return not [t for t in threading.enumerate() if t.name == "netscope-live-reader"]


def test_slot_keeps_only_the_newest():
    slot = LatestSlot()
    for i in range(10):
        slot.put(Frame(i, 0.0, np.zeros(1)))
    assert slot.take(0.1).index == 9 and slot.dropped == 9
    slot.close()
    assert slot.take(0.1) is None


def test_slow_consumer_drops_stale_frames_and_stops_cleanly():
    seen = []

    def slow(frame):
        time.sleep(0.03)
        seen.append(frame.index)
        return frame.image

    stats = pipeline.run(PatternSource(64, 48, frames=200, fps=500), slow, [], max_frames=10,
                         fps=500)
    assert stats.processed == 10 and stats.dropped > 0 and stats.reason == "frame limit"
    assert seen == sorted(seen) and seen[-1] - seen[0] > 9  # jumped over stale frames
    assert no_reader_threads()


def test_every_frame_mode_processes_all_in_order():
    seen = []
    stats = pipeline.run(PatternSource(32, 24, frames=25), lambda f: seen.append(f.index) or
                         f.image, [], block=True)
    assert seen == list(range(25)) and stats.dropped == 0 and stats.reason == "source ended"


def test_video_file_source(tmp_path):
    src = open_source(str(make_video(tmp_path / "v.mp4")))
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    assert len(frames) == 12 and frames[0].shape == (120, 160, 3) and frames[0].dtype == np.uint8


def test_bad_sources(tmp_path):
    with pytest.raises(NetscopeError, match="no such video file or folder"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x01 not a video" * 50)
    with pytest.raises(NetscopeError, match="bad.mp4"):
        open_source(str(tmp_path / "bad.mp4"))
    with pytest.raises(NetscopeError, match="camera 97 cannot be opened"):
        open_source("97")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetscopeError, match="no images"):
        FolderSource(tmp_path / "empty")


def test_view_keys_layers_modes_pause_snapshot(lite0, tmp_path):
    view = LiveView(lite0, "activations", "_blocks.4", snapshot_dir=tmp_path)
    assert view.layer == "_blocks.4"
    view.handle_key("n")
    assert view.layer == "_blocks.5"
    view.handle_key("p")
    view.handle_key("p")
    assert view.layer == "_blocks.3"
    frame = PatternSource(96, 64).read()
    out = view.render(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    view.handle_key("m")
    assert view.mode == "heatmap"
    heat = view.render(frame)
    assert not np.array_equal(heat, out)
    seen = {view.cam_method}
    for _ in range(len(CAM_METHODS)):  # c cycles every CAM method and back; each draws
        view.handle_key("c")
        seen.add(view.cam_method)
        assert view.render(frame).shape == frame.shape
    assert seen == set(CAM_METHODS)
    assert view.cam_method == "gradcam"
    view.handle_key(" ")
    assert view.render(PatternSource(96, 64).read()) is not None
    paused = view.render(frame)
    assert view.render(PatternSource(96, 64).read()) is paused  # paused: repeats
    view.handle_key("s")
    snap = view.snapshots[0]
    assert snap.is_file() and cv2.imread(str(snap)).shape == (64, 96, 3)
    assert not view.handle_key("q")


def test_unknown_cam_method(lite0):
    with pytest.raises(NetscopeError, match="CAM method must be one of"):
        LiveView(lite0, cam_method="scorecam")


def test_unknown_layer(lite0):
    with pytest.raises(NetscopeError, match=r"no layer named '_block.4'.*_blocks.4"):
        LiveView(lite0, "activations", "_block.4")


def test_tile():
    maps = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    grid = tile(maps, gap=1)
    assert grid.shape == (3, 9)
    np.testing.assert_allclose(grid[:, :4], (maps[0] - 0) / 11)


def test_recorder_writes_a_valid_video_atomically(tmp_path):
    rec = Recorder(tmp_path / "out.mp4", fps=10)
    for i in range(5):
        rec(np.full((48, 64, 3), i * 40, np.uint8))
    assert rec.close() == tmp_path / "out.mp4"
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    empty = Recorder(tmp_path / "none.mp4")
    assert empty.close() is None and not (tmp_path / "none.mp4").exists()


def count_frames(path) -> int:
    """Frames actually decoded from the file (the header's count can disagree)."""
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_folder_of_photos_of_different_sizes_records_every_frame(lite0, tmp_path, capsys):
    """Frames of another size used to be dropped silently by the video writer."""
    from netscope.vision.models.images import save_png

    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(120, 160), (200, 100), (90, 90), (300, 400), (64, 256)]):
        save_png(rng.random((h, w, 3)), photos / f"p{i}.png")
    out = tmp_path / "out.mp4"
    rc = main(["live", "--source", str(photos), "--every-frame", "--record", str(out),
               "--no-display"])
    assert rc == 0 and "recorded 5 frames" in capsys.readouterr().out
    assert count_frames(out) == 5


def test_recording_fits_frames_and_follows_the_umask(tmp_path):
    from netscope.vision.live.record import fit

    tall = np.full((100, 50, 3), 255, np.uint8)
    framed = fit(tall, (60, 80))
    assert framed.shape == (60, 80, 3)
    assert (framed[:, :25] == 0).all() and (framed[:, 55:] == 0).all()  # black bars
    assert (framed[:, 26:54] == 255).all()  # the picture, scaled to 60 rows
    old = os.umask(0o022)
    try:
        rec = Recorder(tmp_path / "o.mp4", fps=5)
        for size in [(48, 64), (64, 48), (48, 64)]:
            rec(np.zeros((*size, 3), np.uint8))
        path = rec.close()
    finally:
        os.umask(old)
    assert count_frames(path) == 3
    assert (path.stat().st_mode & 0o777) == 0o644


def test_cli_records_video_file_and_leaves_model_clean(lite0, tmp_path, capsys):
    video = make_video(tmp_path / "in.mp4", frames=8)
    rc = main(["live", "--source", str(video), "--record", str(tmp_path / "out.mp4"),
               "--no-display", "--every-frame"])
    assert rc == 0
    assert "8 frames" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert no_reader_threads()


def test_many_frames_leave_no_hooks_or_threads(lite0):
    view = LiveView(lite0, "heatmap")
    pipeline.run(PatternSource(80, 60, frames=40, fps=1000), lambda f: view.render(f.image), [],
                 block=True)
    for m in lite0.model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert all(p.requires_grad for p in lite0.model.parameters())
    assert no_reader_threads()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="Linux only")
def test_thousand_frames_memory_flat():
    import torch

    from netscope.vision.models.zoo import LoadedModel, Preprocess
    from tests.vision.tiny import TinyGAP

    tiny = LoadedModel("tiny", TinyGAP(dtype=torch.float32).eval(), Preprocess(32), None)
    view = LiveView(tiny, "heatmap")
    run = lambda n: pipeline.run(PatternSource(64, 48, frames=n, fps=10_000),  # noqa: E731
                                 lambda f: view.render(f.image), [], block=True)
    run(100)
    before = _rss_mb()
    stats = run(1000)
    assert stats.processed == 1000
    assert _rss_mb() - before < 20
    view.handle_key("m")
    run(50)  # activations mode too
    for m in tiny.model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert no_reader_threads()


def test_web_page_stream_and_buttons(lite0):
    import json
    import urllib.error
    import urllib.request

    from netscope.vision.live.web import WebSink

    view = LiveView(lite0, "activations", "_blocks.2")
    web = WebSink(view, "127.0.0.1", 0)
    assert web.server.server_address[0] == "127.0.0.1"
    done = threading.Event()
    result = {}

    def serve():
        result["stats"] = pipeline.run(PatternSource(96, 64, fps=30),
                                       lambda f: view.render(f.image), [web],
                                       should_stop=done.is_set)

    worker = threading.Thread(target=serve)
    worker.start()
    try:
        token = f"token={web.guard.token}"

        def get(path):
            return urllib.request.urlopen(f"{web.base}{path}?{token}", timeout=10)

        def press(k):
            return urllib.request.urlopen(urllib.request.Request(
                f"{web.base}key?{token}&k={k}", method="POST"))

        page = get("").read().decode()
        assert "'/stream' + q" in page and 'id="key-n"' in page and web.guard.token in page
        jpeg = get("frame.jpg").read()
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (64, 96, 3)
        press("n")
        deadline = time.time() + 10
        while json.loads(get("status").read())["layer"] != "_blocks.3":
            assert time.time() < deadline
            time.sleep(0.05)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get("../../etc/passwd")
        with pytest.raises(urllib.error.HTTPError, match="400"):
            press("x")
        press("q")
        worker.join(timeout=10)
        assert not worker.is_alive()  # the quit button ended the run
    finally:
        done.set()
        worker.join(timeout=10)
        web.close()
    assert no_reader_threads()
    assert not [t for t in threading.enumerate() if t.name == "netscope-live-web"]


def test_closed_tab_pauses_and_new_tab_resumes(lite0):
    import socket

    from netscope.vision.live.web import WebSink

    view = LiveView(lite0, "activations", "_blocks.1")
    messages = []
    web = WebSink(view, "127.0.0.1", 0, notify=messages.append)
    frame = PatternSource(48, 32).read()
    try:
        host, port = web.server.server_address
        stream_request = (f"GET /stream?token={web.guard.token} HTTP/1.1\r\n"
                          f"Host: {host}:{port}\r\n\r\n").encode()
        sock = socket.create_connection((host, port))
        sock.sendall(stream_request)
        _ = [web(view.render(frame)) for _ in range(3)]
        deadline = time.time() + 10
        while web.viewers != 1:
            assert time.time() < deadline
            time.sleep(0.02)
        sock.close()
        while not view.paused:  # the server notices the closed tab on its next write
            web(view.render(frame))
            assert time.time() < deadline
            time.sleep(0.02)
        assert messages == ["browser tab closed: paused; open the page again to resume"]
        sock = socket.create_connection((host, port))
        sock.sendall(stream_request)
        while view.paused:
            web(view.render(frame))
            assert time.time() < deadline
            time.sleep(0.02)
        assert messages[-1] == "viewer connected: resumed"
        sock.close()
    finally:
        web.close()


class VanishingCamera:
    """A camera that delivers 5 frames and then disappears (unplugged)."""

    def __init__(self, index):
        self.left = 5

    def isOpened(self):
        return True

    def read(self):
        if self.left == 0:
            return False, None
        self.left -= 1
        return True, np.full((48, 64, 3), 100, np.uint8)

    def get(self, prop):
        return 0.0

    def release(self):
        self.left = 0


def test_camera_that_disappears_ends_cleanly(monkeypatch, capsys):
    monkeypatch.setattr(cv2, "VideoCapture", VanishingCamera)
    rc = main(["live", "--source", "0", "--frames", "100", "--no-display", "--mode",
               "activations", "--layer", "_blocks.1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "camera 0 (source ended)" in out
    assert no_reader_threads()


def test_signed_relevance_is_drawn_diverging():
    from netscope.vision.live.view import diverging

    rgb = diverging(np.array([[-2.0, 0.0, 2.0]]))
    assert rgb[0, 0].tolist() == [0, 0, 255] and rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 2].tolist() == [255, 0, 0]
    assert diverging(np.zeros((2, 2))).min() == 255


class FakeClock:
    """Frames that arrive every ``step`` seconds, whatever the machine's speed."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_recording_plays_at_the_rate_frames_were_made(tmp_path):
    """Frames made at 8.7 per second play at 8.7 fps (the header used to say 15, so the
    video ran 1.7x fast); a given rate (a file processed frame by frame) is kept."""
    rec = Recorder(tmp_path / "live.mp4", clock=FakeClock(1 / 8.7))
    for i in range(40):
        rec(np.full((48, 64, 3), i * 6, np.uint8))
    path = rec.close()
    cap = cv2.VideoCapture(str(path))
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 8.7) < 0.05
    cap.release()
    assert count_frames(path) == 40 and rec.rate() == pytest.approx(8.7)
    fixed = Recorder(tmp_path / "file.avi", fps=25.0, clock=FakeClock(0.5))
    for _ in range(6):
        fixed(np.zeros((32, 32, 3), np.uint8))
    cap = cv2.VideoCapture(str(fixed.close()))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    cap.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.avi", "live.mp4"]
    with pytest.raises(NetscopeError, match="record to a .mp4 or .avi file"):
        Recorder(tmp_path / "x.mkv")


KILLED_RECORDING = """
import os, signal, sys
import numpy as np
from netscope.vision.live.record import Recorder
from tests.live.test_live import FakeClock

rec = Recorder(sys.argv[1], clock=FakeClock(0.1))
for i in range(55):  # 10 fps: segments close every 2 s (21 frames), the last stays open
    rec(np.full((48, 64, 3), i * 4, np.uint8))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_during_a_recording_keeps_what_was_recorded(tmp_path):
    """A real SIGKILL mid-recording: the closed segments survive, and the next recording
    to the same file first joins them into NAME-recovered.mp4 at their rate."""
    import subprocess
    import sys

    target = tmp_path / "rec.mp4"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", KILLED_RECORDING, str(target)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert not target.exists() and len(list((tmp_path / ".rec.mp4.parts").glob("seg-*"))) == 2
    again = Recorder(target)
    assert again.recovered == tmp_path / "rec-recovered.mp4"
    assert count_frames(again.recovered) == 42  # two closed segments of 21 frames
    cap = cv2.VideoCapture(str(again.recovered))
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 10.0) < 0.05
    cap.release()
    again(np.zeros((48, 64, 3), np.uint8))
    assert again.close() == target and count_frames(target) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec-recovered.mp4", "rec.mp4"]
