"""LeGrad against TorchCAM 0.5's on a ViT-B/16 (torchvision's layout, random weights:
torchvision itself is not installable beside the pinned CPU torch), one process: the
largest difference of the min-max maps (netscope's raw maps scaled as TorchCAM scales,
eps included) and seconds per batch over one forward pass (all timed in turn, medians), at
batch 1 and 8, over all 12 blocks and the last 4 (TorchCAM's example). Both read each
block's tokens through the model's own final norm and class token (TorchCAM's default for
torchvision's ViT averages all tokens instead; see BENCHMARKS.md).

    pip install --target DIR torchcam --no-deps
    PYTHONPATH=DIR:src:.:benchmarks python benchmarks/peer_torchcam_legrad.py
"""

from __future__ import annotations

import warnings

import torch
from peer_timing import alternating  # benchmarks/peer_timing.py
from torchcam.methods import LeGrad

from netscope.vision.methods.legrad import legrad
from tests.vision.tiny_transformers import vit_b16


def torchcam_scaled(maps: torch.Tensor) -> torch.Tensor:
    """TorchCAM's min-max: (m - min) / (max - min + 1e-8), the eps large beside LeGrad's
    small raw values."""
    lo = maps.amin((1, 2), keepdim=True)
    return (maps - lo) / ((maps - lo).amax((1, 2), keepdim=True) + 1e-8)


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
                target = model(x).argmax(1).tolist()

            def forward():
                with torch.no_grad():
                    model(x)  # noqa: B023

            def ours():
                return legrad(model, x, target, blocks=blocks,  # noqa: B023
                              normalize="none").maps  # the raw means (not offered on the CLI)

            def theirs():
                with LeGrad(model, names, score_projection=own) as cam:  # noqa: B023
                    return cam(target, model(x))[0]  # noqa: B023
            diff = (torchcam_scaled(ours()) - theirs()).abs().max().item()
            fwd, t_ours, t_peer = alternating([forward, ours, theirs], rounds=5)
            print(f"{blocks:6} {b:5} {diff:9.1e} {t_ours / fwd:13.2f} {t_peer / fwd:13.2f} "
                  f"{t_ours / t_peer:6.2f}", flush=True)


if __name__ == "__main__":
    main()
