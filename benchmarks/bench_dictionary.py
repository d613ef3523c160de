"""Dictionary learning's costs on EfficientNet-Lite0, in one process where ratios are asked.

    python benchmarks/bench_dictionary.py pass      # sampling vs the atlas's recording pass
    python benchmarks/bench_dictionary.py memory N  # peak memory: sample N images from a
                                                    # folder, merge, learn a TopK SAE

The pass compares per-image times on the same in-memory batches (decoding not timed, as in
bench_atlas.py); memory runs the real folder pass (files written first) and learning.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from netscope.perf import configure
from netscope.vision.core.capture import LayerRef
from netscope.vision.models.zoo import load_model
from netscope.vision.units.atlas_run import record_batch

sys.path.insert(0, str(Path(__file__).parent))
from bench_atlas import BATCH, batches, fresh  # noqa: E402


def bench_pass(lm, rounds: int = 5) -> None:
    from netscope.vision.concepts.samples import SampleSettings, SampleShard, sample_batch

    data = list(batches(lm, BATCH * 4))
    for layer in ("_blocks.5", "_blocks.15"):
        layouts, state = fresh(lm, (layer,), 64)
        ref = LayerRef.parse(layer)
        settings = SampleSettings(layer, positions=16, workers=0)
        atlas, sampling = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            for ids, x in data:
                record_batch(lm, x, ids, {layer: ref}, layouts, state)
            atlas.append(time.perf_counter() - t)
            t = time.perf_counter()
            shard = SampleShard()
            for ids, x in data:
                sample_batch(lm, x, ids, ref, layouts[layer], settings, shard)
            sampling.append(time.perf_counter() - t)
        a, s = statistics.median(atlas), statistics.median(sampling)
        print(f"{layer}: atlas pass {a / 64 * 1000:.1f} ms/image, dictionary sampling "
              f"{s / 64 * 1000:.1f} ms/image, ratio {s / a:.2f}x (target <= 1.5)")


def bench_memory(lm, n: int) -> None:
    from PIL import Image

    from netscope.vision.concepts.learn import LearnSettings, learn
    from netscope.vision.concepts.samples import SampleSettings, sample_folder

    folder = Path(tempfile.mkdtemp(prefix="netscope-dict-"))
    rng = np.random.default_rng(0)
    for i, (_, x) in enumerate(batches(lm, n)):
        for j, img in enumerate(x):
            pic = lm.preprocess.denormalize(img[None]).clamp(0, 1)[0].permute(1, 2, 0)
            Image.fromarray((pic.numpy() * 255).astype(np.uint8)).save(
                folder / f"{i:04d}-{j:02d}-{rng.integers(1e6)}.jpg")
    start = time.perf_counter()
    got = sample_folder(lm, folder, folder / "out", SampleSettings("_blocks.15", workers=0))
    sampled = time.perf_counter() - start
    learn(got.x, LearnSettings("topk-sae", 64, epochs=2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} images -> {len(got.x)} samples in {sampled:.1f} s; peak resident memory "
          f"{peak:.0f} MiB (sampling, merging and two SAE epochs)")


if __name__ == "__main__":
    configure()
    lm = load_model()
    what = sys.argv[1] if len(sys.argv) > 1 else "pass"
    if what == "pass":
        bench_pass(lm)
    else:
        bench_memory(lm, int(sys.argv[2]) if len(sys.argv) > 2 else 200)
