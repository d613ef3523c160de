"""The CAM variants pytorch-grad-cam 1.5.7 has (element-wise Grad-CAM, Eigen-Grad-CAM,
KPCA-CAM, FullGrad, Shapley-CAM, Finer-CAM) against netscope's on EfficientNet-Lite0, one
process: agreement of the min-max scaled maps at the input's size (correlation and largest
difference per image) and time per batch as a ratio to one forward pass (batch 1 and 8).
pytorch-grad-cam is a peer:

    pip install --target DIR grad-cam ttach opencv-python-headless tqdm --no-deps
    PYTHONPATH=DIR:STUBS python benchmarks/peer_gradcam_variants.py

(STUBS: a folder with a stub ``torchvision`` package, for the helpers pytorch-grad-cam
imports and these methods never call.)
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pytorch_grad_cam as pgc
import torch
from peer_timing import lite0_photos, timed  # benchmarks/peer_timing.py
from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget

from netscope.vision.core.heatmaps import normalize_maps, upsample
from netscope.vision.methods.registry import explain

LAYER = "_blocks.15"  # the last MBConv block (a 7 x 7 grid)
CASES = (("gradcam-elementwise", pgc.GradCAMElementWise),
         ("eigengradcam", pgc.EigenGradCAM),
         ("kpcacam", pgc.KPCA_CAM),
         ("fullgrad", pgc.FullGrad),
         ("shapleycam", pgc.ShapleyCAM),
         ("finercam", pgc.FinerCAM))



def ours_at_input(name: str, model, x, t) -> np.ndarray:
    heat = explain(name, model, x, t, layer=LAYER, normalize="minmax") if name != "fullgrad" \
        else explain(name, model, x, t, normalize="minmax")
    maps = heat.maps if heat.maps.shape[-2:] == x.shape[-2:] else \
        upsample(heat.maps, tuple(x.shape[-2:]), "minmax")
    return normalize_maps(maps, "minmax").detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    lm, x8 = lite0_photos(8)
    model = lm.model
    layer = dict(model.named_modules())[LAYER]
    print(f"{'method':20} {'batch':>5} {'corr per image':>30} {'max |diff|':>10} "
          f"{'netscope/fwd':>13} {'peer/fwd':>9} {'ratio':>6}")
    for b in (int(v) for v in args.batches.split(",")):
        x = x8[:b]
        with torch.no_grad():
            t = model(x).argmax(1).tolist()
            fwd = timed(lambda: model(x), 5)  # noqa: B023
        for name, peer in CASES:
            cam = peer(model, target_layers=[] if name == "fullgrad" else [layer])
            targets = None if name == "finercam" else [  # Finer-CAM: its own neighbours
                (ClassifierOutputReST if name == "shapleycam" else ClassifierOutputTarget)(c)
                for c in t]
            ref = cam(input_tensor=x.clone(), targets=targets)
            got = ours_at_input(name, model, x, t)
            corr = [np.corrcoef(got[i].ravel(), ref[i].ravel())[0, 1] for i in range(b)]
            diff = max(float(np.abs(got[i] - ref[i]).max()) for i in range(b))
            t_ours = timed(lambda: ours_at_input(name, model, x, t))  # noqa: B023
            t_peer = timed(lambda: cam(input_tensor=x.clone(), targets=targets))  # noqa: B023
            shown = " ".join(f"{c:.3f}" for c in corr[:6]) + (" ..." if b > 6 else "")
            print(f"{name:20} {b:5} {shown:>30} {diff:10.1e} {t_ours / fwd:13.1f} "
                  f"{t_peer / fwd:9.1f} {t_ours / t_peer:6.2f}", flush=True)


if __name__ == "__main__":
    main()
