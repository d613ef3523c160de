"""Which layer of a ViT gives localized Grad-CAM maps? A small ViT (3 blocks, patch 4, class
token) is trained on CPU to name the quadrant holding a strongly textured 8x8 square
(tests.vision.tiny_transformers), then maps at candidate layers are scored on 128 new
images: mean map value inside vs outside the square, how often the map's peak falls inside,
and deletion / insertion AUC (zeros baseline, 16 steps) against a random map.

    python benchmarks/bench_vit_layers.py [--picture docs/images/vit_layers.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netscope import vision as A  # noqa: E402
from netscope.vision.core.layer_choice import default_layer  # noqa: E402
from netscope.vision.methods.rollout import attention_rollout  # noqa: E402
from netscope.vision.metrics.faithfulness import deletion, insertion  # noqa: E402
from tests.vision.tiny_transformers import TinyViT, quadrant_images, trained  # noqa: E402

N = 128


def scores(model, x, y, square, maps) -> str:
    inside = (maps * (square > 0.99)).sum() / (square > 0.99).sum()
    outside = (maps * (square == 0)).sum() / (square == 0).sum()
    hit = square.flatten(1)[torch.arange(N), maps.flatten(1).argmax(1)].mean()
    d = deletion(model, x, maps, y, steps=16, baseline="zeros").auc.mean()
    i = insertion(model, x, maps, y, steps=16, start="zeros").auc.mean()
    return (f"| {inside:.3f} | {outside:.3f} | {hit:.2f} | {d:.3f} | {i:.3f} |")


def picture(path: str, x, maps: dict[str, torch.Tensor], n: int = 4) -> None:
    """n test images and their maps, one row each, as a PNG."""
    import matplotlib.pyplot as plt

    from netscope.files.atomic import write_bytes
    from netscope.render.heatmap import overlay
    from netscope.render.png import figure_png

    fig, axes = plt.subplots(n, 1 + len(maps), figsize=(2.1 * (1 + len(maps)), 2.1 * n))
    for i in range(n):
        rgb = ((x[i].permute(1, 2, 0) - x.min()) / (x.max() - x.min())).numpy()
        axes[i, 0].imshow(rgb)
        for j, (name, m) in enumerate(maps.items(), start=1):
            up = F.interpolate(m[i:i + 1, None].float(), size=(32, 32), mode="bilinear")[0, 0]
            up = (up / up.max()).numpy() if up.max() > 0 else up.numpy()
            axes[i, j].imshow(overlay(rgb, up))
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
    axes[0, 0].set_title("input (textured square)", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    write_bytes(path, figure_png(fig, dpi=80))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--picture", help="also draw 4 test images and their maps here")
    args = parser.parse_args()
    start = time.perf_counter()
    torch.manual_seed(0)
    model = trained(TinyViT(classes=4, depth=3))
    x, y, masks = quadrant_images(N, 999)
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).double().mean()
    print(f"trained in {time.perf_counter() - start:.1f} s, test accuracy {accuracy:.2f}; "
          f"default layer: {default_layer(model, x)}")
    square = F.avg_pool2d(masks[:, None], 4)[:, 0]  # share of each patch inside the square
    print("| map | mean inside | mean outside | peak inside | deletion AUC (lower) | "
          "insertion AUC (higher) |")
    print("|---|---:|---:|---:|---:|---:|")
    for layer in ("blocks.1", "blocks.2.norm1", "blocks.1.norm1"):
        maps = A.grad_cam(model, x, y, layer=layer).maps
        print(f"| Grad-CAM at {layer} " + scores(model, x, y, square, maps))
    print("| attention rollout " + scores(model, x, y, square, attention_rollout(model, x).maps))
    rand = torch.rand(N, 8, 8, generator=torch.Generator().manual_seed(0))
    print("| random " + scores(model, x, y, square, rand))
    if args.picture:
        picture(args.picture, x, {
            "Grad-CAM, default (blocks.1)": A.grad_cam(model, x, y, layer="blocks.1").maps,
            "Grad-CAM, blocks.2.norm1": A.grad_cam(model, x, y, layer="blocks.2.norm1").maps,
            "attention rollout": attention_rollout(model, x).maps})


if __name__ == "__main__":
    main()
