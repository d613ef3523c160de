"""Live heatmap mode on a generated 300-frame 640x480 video, no display, beside the model's
plain forward-pass rate measured in the same process.

    python benchmarks/bench_live.py [--frames 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch

from netscope.perf import configure
from netscope.vision.live import pipeline
from netscope.vision.live.sources import PatternSource, open_source
from netscope.vision.live.view import LiveView
from netscope.vision.models.zoo import load_model


def make_video(path: Path, frames: int) -> Path:
    pattern = PatternSource(640, 480, frames=frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    while (frame := pattern.read()) is not None:
        writer.write(frame[..., ::-1])
    writer.release()
    return path


def main() -> None:
    print(configure(), flush=True)  # as the netscope command does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    lm = load_model()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for _ in range(3):
            lm.model(x)
        start = time.perf_counter()
        for _ in range(30):
            lm.model(x)
        forward_fps = 30 / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "bench.mp4", args.frames)
        view = LiveView(lm, "heatmap")
        every = pipeline.run(open_source(str(video)), lambda f: view.render(f.image), [],
                             block=True)
        view = LiveView(lm, "heatmap")
        source = open_source(str(video))
        live = pipeline.run(source, lambda f: view.render(f.image), [], fps=source.fps)
    print(f"EfficientNet-Lite0 224x224, {torch.get_num_threads()} threads")
    print(f"plain forward pass:                     {forward_fps:6.1f} frames/s")
    print(f"heatmap mode, every frame ({every.processed} frames): {every.fps:6.1f} frames/s, "
          f"median latency {every.median_latency * 1e3:.0f} ms")
    print(f"heatmap mode, real-time 30 fps playback: {live.fps:6.1f} frames/s, median latency "
          f"{live.median_latency * 1e3:.0f} ms, {live.dropped} stale frames dropped")


if __name__ == "__main__":
    main()
