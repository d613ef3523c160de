"""LeGrad against TorchCAM 0.5's on a ViT-B/16 (torchvision's layout, random weights:
torchvision itself is not installable beside the pinned CPU torch), one process: the
largest difference of the min-max maps and seconds per batch over one forward pass, at
batch 1 and 8, over all 12 blocks and the last 4 (TorchCAM's example). Both read each
block's tokens through the model's own final norm and class token (TorchCAM's default for
torchvision's ViT averages all tokens instead; see BENCHMARKS.md).

    pip install --target DIR torchcam --no-deps
    PYTHONPATH=DIR:src:. python benchmarks/peer_torchcam_legrad.py
"""

from __future__ import annotations

import warnings

import torch
from peer_timing import timed  # benchmarks/peer_timing.py
from torchcam.methods import LeGrad

from netscope.vision.methods.registry import explain
from tests.vision.tiny_transformers import vit_b16


def main() -> None:
    warnings.simplefilter("ignore")
    model = vit_b16()
    own = lambda z: model.heads(model.encoder.ln(z)[:, 0])  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    x8 = torch.randn(8, 3, 224, 224, generator=gen)
    print(f"{'blocks':>6} {'batch':>5} {'max diff':>9} {'netscope/fwd':>13} {'TorchCAM/fwd':>13} "
          f"{'ratio':>6}", flush=True)
    for blocks in (12, 4):
        names = [f"encoder.layers.{i}" for i in range(12 - blocks, 12)]
        for b in (1, 8):
            x = x8[:b]
            with torch.no_grad():
                fwd = timed(lambda: model(x))  # noqa: B023
                target = model(x).argmax(1).tolist()

            def ours():
                return explain("legrad", model, x, target, blocks=blocks,  # noqa: B023
                               normalize="minmax").maps

            def theirs():
                with LeGrad(model, names, score_projection=own) as cam:  # noqa: B023
                    return cam(target, model(x))[0]  # noqa: B023
            diff = (ours() - theirs()).abs().max().item()
            t_ours, t_peer = timed(ours), timed(theirs)
            print(f"{blocks:6} {b:5} {diff:9.1e} {t_ours / fwd:13.2f} {t_peer / fwd:13.2f} "
                  f"{t_ours / t_peer:6.2f}", flush=True)


if __name__ == "__main__":
    main()
