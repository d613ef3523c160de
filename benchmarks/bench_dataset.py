"""Whole-dataset explanation speed (`vision explain FOLDER`, Grad-CAM on EfficientNet-Lite0):
images/s at batch 1 against the default batch of 16, and the gain from DataLoader decoding
workers, on a generated folder of JPEG photos (the four sample photos at several sizes),
all in this one process.

    python benchmarks/bench_dataset.py [--images 96] [--device cpu]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from netscope.perf import configure
from netscope.vision.core.device import to_device
from netscope.vision.datasets.explain_run import DatasetSettings, explain_folder
from netscope.vision.models.images import SAMPLES, sample_image
from netscope.vision.models.zoo import load_model


def make_folder(root: Path, n: int) -> None:
    """n JPEGs: the sample photos, resized to 480-1024 px on the long side."""
    for i in range(n):
        rgb = (sample_image(SAMPLES[i % 4]) * 255).astype(np.uint8)
        im = Image.fromarray(rgb)
        side = 480 + (i * 37) % 545
        im.thumbnail((side, side))
        (root / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        im.save(root / f"d{i % 5}" / f"img{i:04d}.jpg", quality=90)


def rate(lm, root: Path, batch: int, workers: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    try:
        start = time.perf_counter()
        s = explain_folder(lm, root, out, DatasetSettings(batch_size=batch, workers=workers,
                                                          table="csv"))
        return (s.explained + s.unreadable) / (time.perf_counter() - start)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    print(configure())
    lm = to_device(load_model(), args.device)
    root = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        make_folder(root, args.images)
        rate(lm, root, 16, 0)  # warm-up: first-call costs out of the way
        b1 = rate(lm, root, 1, 0)
        b16 = rate(lm, root, 16, 0)
        b16w = rate(lm, root, 16, 2)
        print(f"{args.images} images, Grad-CAM on EfficientNet-Lite0, device "
              f"{lm.preprocess.device}")
        print(f"batch 1, decoding in the main process:  {b1:6.1f} images/s")
        print(f"batch 16, decoding in the main process: {b16:6.1f} images/s "
              f"({b16 / b1:.2f}x batch 1)")
        print(f"batch 16, 2 decoding workers:           {b16w:6.1f} images/s "
              f"({b16w / b16:.2f}x no workers)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
