"""CAM weights from forward passes instead of gradients: Score-CAM and Ablation-CAM.

Both keep the CAM form map = ReLU(sum_k w_k A_k) at a layer, but measure each channel's
weight by what the model does when the channel is used or removed:
- Score-CAM (Wang et al. 2020): w_k = the target's softmax probability on the image
  multiplied by channel k's map (upsampled to the input, min-max scaled to [0, 1]), as the
  authors' code does (no baseline subtracted);
- Ablation-CAM (Desai & Ramaswamy 2020): w_k = (y - y_k) / y, the relative drop of the
  target's logit y when channel k is set to zero at the layer.
SS-CAM and IS-CAM average Score-CAM's weight over noisy or scaled copies of each map.
Each needs one forward pass per channel and image (per copy); they run in batches. ``top_k`` keeps
only the k channels with the largest mean activation (the others get weight 0), the usual
way to make them affordable on wide layers (1280 channels at EfficientNet-Lite0's head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netscope.vision.core.batched import BATCH, batched_scores, check_positive, class_scores
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.fastpath import truncated
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.layer_choice import default_layer
from netscope.vision.core.targets import Resolved, TargetLike, resolve
from netscope.vision.core.token_grid import Reshape, layout_for


def _activations(model: nn.Module, x: torch.Tensor, layer: LayerRef, targets: TargetLike,
                 reshape: Reshape | None = None):
    """The layer's grid (token layers reshaped), its layout, the logits and the targets."""
    with capture(model, [layer]) as rec, torch.no_grad():
        logits = model(x)
        raw = rec[layer].detach()
    layout = layout_for(model, raw, tuple(x.shape[-2:]), str(layer), reshape)
    return layout.to_grid(raw), layout, logits, resolve(logits, targets)


def chosen_channels(A: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """(N, k) channel indices per image: all, or the top_k by mean activation."""
    n, c = A.shape[:2]
    if top_k is None or top_k >= c:
        return torch.arange(c, device=A.device).expand(n, c)
    check_positive("top_k", top_k)
    return A.mean((2, 3)).topk(top_k, dim=1).indices


def _weighted_map(A: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor, logits,
                  t: Resolved, layer: LayerRef, method: str, normalize: str) -> Heatmaps:
    w = torch.zeros(A.shape[:2], dtype=A.dtype, device=A.device)
    w.scatter_(1, chosen, weights.to(A.dtype))
    maps = F.relu((w[:, :, None, None] * A).sum(1))
    return Heatmaps(normalize_maps(maps, normalize), logits, t, t.labels, str(layer), method,
                    normalize)


def _mask_scores(model: nn.Module, x: torch.Tensor, A: torch.Tensor, chosen: torch.Tensor,
                 t: Resolved, batch_size: int, scales: torch.Tensor,
                 shifts: torch.Tensor) -> torch.Tensor:
    """(N, k): the target's mean probability on the image times each chosen channel's map
    (upsampled, min-max scaled), over copies of the map, copy j being map * scales[j] +
    shifts[j] (SS-CAM's noisy copies, IS-CAM's scaled ones; Score-CAM has the map alone)."""
    k, v = chosen.shape[1], len(scales)

    def make(start: int, stop: int) -> torch.Tensor:
        idx = torch.arange(start, stop, device=A.device)  # row: image, channel, variant
        n, c = idx // (k * v), chosen[idx // (k * v), (idx // v) % k]
        m = F.interpolate(A[n, c][:, None], size=x.shape[-2:], mode="bilinear",
                          align_corners=False)
        j = idx % v
        m = normalize_maps(m[:, 0], "minmax") * scales[j].view(-1, 1, 1) + shifts[j]
        return x[n] * m[:, None]

    scores = batched_scores(model, make, x.shape[0] * k * v, t.repeat_interleave(k * v),
                            batch_size, "prob")
    return scores.view(-1, k, v).mean(2)


def _score_family(model, x, targets, layer, top_k, batch_size, normalize, reshape, method,
                  scales=(1.0,), shifts=None) -> Heatmaps:
    layer = LayerRef.parse(layer or default_layer(model, x))
    A, _, logits, t = _activations(model, x, layer, targets, reshape)
    chosen = chosen_channels(A, top_k)
    scales = torch.as_tensor(scales, dtype=x.dtype, device=x.device)
    shifts = torch.zeros((len(scales), *x.shape[-2:]), dtype=x.dtype, device=x.device) \
        if shifts is None else shifts
    weights = _mask_scores(model, x, A, chosen, t, batch_size, scales, shifts)
    return _weighted_map(A, weights, chosen, logits, t, layer, method, normalize)


@checked_images
def score_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
              layer: str | LayerRef | None = None, top_k: int | None = None,
              batch_size: int = BATCH,
              normalize: str = "max", reshape: Reshape | None = None) -> Heatmaps:
    """Score-CAM maps, one target per image (see the module docstring)."""
    return _score_family(model, x, targets, layer, top_k, batch_size, normalize, reshape,
                         "scorecam")


@checked_images
def ss_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
           layer: str | LayerRef | None = None, top_k: int | None = None,
           samples: int = 35, mask_noise: float = 2.0, seed: int = 0, batch_size: int = BATCH,
           normalize: str = "max", reshape: Reshape | None = None) -> Heatmaps:
    """SS-CAM (Wang et al. 2020, "Smoothed Score-CAM"): Score-CAM's weight averaged over
    ``samples`` copies of each channel's scaled map with Gaussian noise (SD ``mask_noise``,
    the paper's 2 on maps in [0, 1]) added; one noise pattern per sample, drawn from
    ``seed``, shared by the channels and images."""
    check_positive("samples", samples)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.stack([torch.randn(x.shape[-2:], generator=gen, dtype=x.dtype)
                         for _ in range(samples)]).to(x.device) * mask_noise
    return _score_family(model, x, targets, layer, top_k, batch_size, normalize, reshape,
                         "sscam", (1.0,) * samples, noise)


@checked_images
def is_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
           layer: str | LayerRef | None = None, top_k: int | None = None, samples: int = 10,
           batch_size: int = BATCH, normalize: str = "max",
           reshape: Reshape | None = None) -> Heatmaps:
    """IS-CAM (Naidu et al. 2020, "Integrated Score-CAM"): Score-CAM's weight averaged over
    the channel's scaled map times c_i = sum_{j <= i} j / N, i = 1..N (N = ``samples``),
    the paper's integration of the mask (as TorchCAM)."""
    check_positive("samples", samples)
    scales = torch.cumsum(torch.arange(1, samples + 1, dtype=torch.float64) / samples, 0)
    return _score_family(model, x, targets, layer, top_k, batch_size, normalize, reshape,
                         "iscam", scales.tolist())


@checked_images
def ablation_cam(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
                 layer: str | LayerRef | None = None, top_k: int | None = None,
                 batch_size: int = BATCH,
                 normalize: str = "max", reshape: Reshape | None = None) -> Heatmaps:
    """Ablation-CAM maps, one target per image (see the module docstring); on a token
    layer a channel is zeroed at the patch tokens only (class tokens are not in the map)."""
    check_positive("batch_size", batch_size)
    layer = LayerRef.parse(layer or default_layer(model, x))
    A, layout, logits, t = _activations(model, x, layer, targets, reshape)
    chosen = chosen_channels(A, top_k)
    n_img, k = chosen.shape
    base = class_scores(logits, t, "logit")
    zeroed: list[torch.Tensor] = []  # the channel each row of the current batch loses

    def ablate(acts: torch.Tensor) -> torch.Tensor:
        if layout.form == "nchw":
            out = acts.clone()
            out[torch.arange(out.shape[0], device=out.device), zeroed[0]] = 0
            return out
        drop = torch.zeros((acts.shape[0], *A.shape[1:]), dtype=acts.dtype, device=acts.device)
        drop[torch.arange(acts.shape[0], device=acts.device), zeroed[0]] = 1
        return acts * (1 - layout.mask_back(acts, drop))

    drops = []
    net = _traced_with(model, layer.name)
    with capture(net, [layer], edit=ablate), torch.no_grad():
        for start in range(0, n_img * k, batch_size):
            idx = torch.arange(start, min(n_img * k, start + batch_size), device=A.device)
            n = idx // k
            zeroed[:] = [chosen[n, idx % k]]
            y_k = class_scores(net(x[n].contiguous(memory_format=torch.channels_last)), t[n],
                               "logit")
            drops.append((base[n] - y_k) / torch.where(base[n] != 0, base[n], 1.0))
    return _weighted_map(A, torch.cat(drops).view(n_img, k), chosen, logits, t, layer,
                         "ablationcam", normalize)


def _traced_with(model: nn.Module, name: str) -> nn.Module:
    """The model's simplified trace (batch norm folded: 1.25-1.9x faster forward passes
    on EfficientNet-Lite0) when it still calls the module ``name``, else the model itself."""
    net = truncated(model, None)
    graph = getattr(net, "graph", None)
    called = {n.target for n in graph.nodes if n.op == "call_module"} if graph else set()
    if net is None or name not in called:  # a traced-through module's hooks never run
        return model
    return net
