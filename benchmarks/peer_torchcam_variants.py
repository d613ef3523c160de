"""The CAM variants TorchCAM 0.5 has and defines differently (Score-CAM, SS-CAM, IS-CAM,
Smooth Grad-CAM++) against netscope's on EfficientNet-Lite0, one process: correlation of the
maps (their definitions differ, see BENCHMARKS.md) and seconds per photo. TorchCAM is a
peer (it imports without torchvision):

    pip install --target DIR torchcam --no-deps
    PYTHONPATH=DIR python benchmarks/peer_torchcam_variants.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from peer_timing import lite0_photos
from torchcam.methods import ISCAM, SSCAM, ScoreCAM, SmoothGradCAMpp

from netscope.vision.methods.registry import explain

SCORE_LAYER = "_blocks.0"  # few channels: one pass per channel and copy stays affordable
PP_LAYER = "_blocks.15"


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape[-2:] != b.shape[-2:]:
        b = F.interpolate(b[:, None], size=a.shape[-2:], mode="bilinear")[:, 0]
    return float(np.corrcoef(a.flatten().detach(), b.flatten().detach())[0, 1])


def main() -> None:
    warnings.simplefilter("ignore")
    lm, x = lite0_photos(4)
    model = lm.model
    targets = model(x).argmax(1).tolist()
    print(f"{'method':18} {'photo':>5} {'corr':>6} {'netscope s':>11} {'TorchCAM s':>11} "
          f"{'ratio':>6}")
    for name, peer, ours_kw, peer_kw, layer in (
            ("scorecam", ScoreCAM, {}, {"batch_size": 16}, SCORE_LAYER),
            ("sscam", SSCAM, {"samples": 8}, {"batch_size": 16, "num_samples": 8},
             SCORE_LAYER),
            ("iscam", ISCAM, {"samples": 8}, {"batch_size": 16, "num_samples": 8},
             SCORE_LAYER),
            ("smoothgradcam++", SmoothGradCAMpp, {"samples": 4}, {"num_samples": 4,
                                                                 "std": 0.3}, PP_LAYER)):
        for i in range(len(x)):
            xi, t = x[i:i + 1], targets[i:i + 1]
            noise = {"noise": 0.3 / float(xi.max() - xi.min())} if "smooth" in name else {}
            start = time.perf_counter()
            ours = explain(name, model, xi, t, layer=layer, normalize="minmax", **ours_kw,
                           **noise).maps
            t_ours = time.perf_counter() - start
            torch.manual_seed(0)
            start = time.perf_counter()
            with peer(model, layer, input_shape=(3, 224, 224), **peer_kw) as cam:
                with torch.set_grad_enabled("smooth" in name):
                    ref = cam(t, model(xi))[0]
            t_peer = time.perf_counter() - start
            print(f"{name:18} {i:5} {correlation(ours, ref):6.3f} {t_ours:11.2f} "
                  f"{t_peer:11.2f} {t_ours / t_peer:6.2f}", flush=True)


if __name__ == "__main__":
    main()
