"""Which layer of a ViT gives localized Grad-CAM maps? A small ViT (3 blocks, patch 4, class
token) is trained on CPU to name the quadrant holding a strongly textured 8x8 square
(tests.vision.tiny_transformers), then maps at candidate layers are scored on 128 new
images: mean map value inside vs outside the square, how often the map's peak falls inside,
and deletion / insertion AUC (zeros baseline, 16 steps) against a random map.

    python benchmarks/bench_vit_layers.py     # about 10-40 s on 2 cores
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netscope.vision import attribution as A  # noqa: E402
from netscope.vision.faithfulness import deletion, insertion  # noqa: E402
from netscope.vision.rollout import attention_rollout  # noqa: E402
from tests.vision.tiny_transformers import TinyViT, quadrant_images, trained  # noqa: E402

N = 128


def scores(model, x, y, square, maps) -> str:
    inside = (maps * (square > 0.99)).sum() / (square > 0.99).sum()
    outside = (maps * (square == 0)).sum() / (square == 0).sum()
    hit = square.flatten(1)[torch.arange(N), maps.flatten(1).argmax(1)].mean()
    d = deletion(model, x, maps, y, steps=16, baseline="zeros").auc.mean()
    i = insertion(model, x, maps, y, steps=16, start="zeros").auc.mean()
    return (f"| {inside:.3f} | {outside:.3f} | {hit:.2f} | {d:.3f} | {i:.3f} |")


def main() -> None:
    start = time.perf_counter()
    torch.manual_seed(0)
    model = trained(TinyViT(classes=4, depth=3))
    x, y, masks = quadrant_images(N, 999)
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).double().mean()
    print(f"trained in {time.perf_counter() - start:.1f} s, test accuracy {accuracy:.2f}; "
          f"default layer: {A.default_cam_layer(model, x)}")
    square = F.avg_pool2d(masks[:, None], 4)[:, 0]  # share of each patch inside the square
    print("| map | mean inside | mean outside | peak inside | deletion AUC (lower) | "
          "insertion AUC (higher) |")
    print("|---|---:|---:|---:|---:|---:|")
    for layer in ("blocks.1", "blocks.2.norm1", "blocks.1.norm1"):
        maps = A.grad_cam(model, x, layer, y).maps
        print(f"| Grad-CAM at {layer} " + scores(model, x, y, square, maps))
    print("| attention rollout " + scores(model, x, y, square, attention_rollout(model, x).maps))
    rand = torch.rand(N, 8, 8, generator=torch.Generator().manual_seed(0))
    print("| random " + scores(model, x, y, square, rand))


if __name__ == "__main__":
    main()
