"""The noise tunnel, GradientSHAP, layer and neuron conductance, Shapley value sampling,
KernelSHAP and LIME against Captum on EfficientNet-Lite0, one process: agreement on the same
samples (the draws Captum made, recorded or replayed) and time per batch as a ratio to one
forward pass (batch 1 and 8). Captum is a peer: pip install --target DIR captum tqdm
--no-deps, then

    PYTHONPATH=DIR:. python benchmarks/peer_captum_sampled.py [--batches 1,8]

Settings, the same for both: GradientSHAP 16 samples over 3 reference images; the noise
tunnel 8 samples of Input x Gradient; conductance 16 steps (trapezoid) at Lite0's last
block; Shapley value sampling 4 orders of a 4 x 4 grid; KernelSHAP and LIME 64 samples of a
4 x 4 grid. Captum evaluates 16 perturbations per forward pass (perturbations_per_eval=16,
its fastest), netscope 16 images per pass.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from captum import attr as C
from peer_timing import lite0_photos, timed  # benchmarks/peer_timing.py

from netscope.vision.core.baselines import baseline_sets
from netscope.vision.core.layer_choice import default_layer
from netscope.vision.methods.gradient_shap import gradient_shap_draws
from netscope.vision.methods.input_gradient import input_x_gradient
from netscope.vision.methods.noise_tunnel import tunnel_draws
from netscope.vision.methods.registry import explain
from netscope.vision.methods.segments import segment_masks
from netscope.vision.methods.shapley_sampling import shapley_orders
from netscope.vision.methods.surrogate import fitted
from tests.vision.peer_draws import recording


def module(model, name: str):
    return dict(model.named_modules())[name.split(":")[0]]


def cases(model, x, t, refs, layer):
    """(name, netscope call, Captum call, agreement: ours on Captum's draws vs Captum)."""
    n = len(x)
    mask = segment_masks(x, "grid", 4)
    layer_module = module(model, layer)
    on_input = layer.endswith(":input")  # the default layer is the pooling's input

    def gshap_same():
        np.random.seed(0)
        torch.manual_seed(0)
        ref = C.GradientShap(model).attribute(x.clone(), baselines=refs, target=t,
                                              n_samples=16)
        np.random.seed(0)
        idx = torch.as_tensor(np.random.choice(3, 16 * n)).view(n, 16)
        torch.manual_seed(0)
        eps = torch.normal(0, torch.tensor(0.0).repeat(16 * n, *x.shape[1:])).view(
            n, 16, *x.shape[1:])
        alpha = torch.as_tensor(np.random.uniform(0.0, 1.0, 16 * n)).view(n, 16)
        ours = gradient_shap_draws(model, x, t, baseline_sets(x, refs), idx, alpha, eps)
        return ours.attributions, ref

    def tunnel_same():
        torch.manual_seed(1)
        ref = C.NoiseTunnel(C.InputXGradient(model)).attribute(
            x.clone(), nt_type="smoothgrad", nt_samples=8, stdevs=0.1, target=t)
        torch.manual_seed(1)
        noise = torch.normal(0, torch.tensor(0.1).repeat(8 * n, *x.shape[1:]))
        draws = noise.view(n, 8, *x.shape[1:]).transpose(0, 1)
        return tunnel_draws(input_x_gradient, model, x, t, draws).attributions, ref

    def shapley_same():
        torch.manual_seed(2)
        ref = C.ShapleyValueSampling(model).attribute(
            x.clone(), target=t, baselines=0.0, feature_mask=mask[:1, None], n_samples=4,
            perturbations_per_eval=16)
        torch.manual_seed(2)
        orders = torch.stack([torch.randperm(16) for _ in range(4)])
        ours = shapley_orders(model, x, t, mask[:1].expand(n, -1, -1), [orders] * n)
        return ours.attributions, ref

    def surrogate_same(kind, peer):
        def run():
            if n > 1:
                return None
            p = peer(model)
            p.perturb_func, seen = recording(p.perturb_func)
            torch.manual_seed(3)
            ref = p.attribute(x.clone(), target=t, baselines=0.0, feature_mask=mask[:, None],
                              n_samples=64, perturbations_per_eval=16)
            return fitted(model, x, t, mask, [torch.stack(seen)], kind).attributions, ref
        return run

    def lc_same():
        ours = explain("layer-conductance", model, x, t, layer=layer, steps=16)
        return ours.extras["units"], C.LayerConductance(model, layer_module).attribute(
            x.clone(), baselines=torch.zeros_like(x), target=t, n_steps=16,
            method="riemann_trapezoid", attribute_to_layer_input=on_input)
    return [
        ("gradient-shap", lambda: explain("gradient-shap", model, x, t, baselines=refs,
                                          samples=16),
         lambda: C.GradientShap(model).attribute(x.clone(), baselines=refs, target=t,
                                                 n_samples=16), gshap_same),
        ("noise tunnel (IxG)", lambda: explain("input-x-gradient", model, x, t, nt_samples=8,
                                               nt_noise=0.02),
         lambda: C.NoiseTunnel(C.InputXGradient(model)).attribute(
             x.clone(), nt_type="smoothgrad", nt_samples=8, stdevs=0.1, target=t),
         tunnel_same),
        ("layer-conductance", lambda: explain("layer-conductance", model, x, t, layer=layer,
                                              steps=16),
         lambda: C.LayerConductance(model, layer_module).attribute(
             x.clone(), baselines=torch.zeros_like(x), target=t, n_steps=16,
             method="riemann_trapezoid", attribute_to_layer_input=on_input), lc_same),
        ("neuron-conductance", lambda: explain("neuron-conductance", model, x, t, layer=layer,
                                               unit=0, position=(3, 3), steps=15),
         lambda: C.NeuronConductance(model, layer_module).attribute(
             x.clone(), neuron_selector=(0, 3, 3), baselines=torch.zeros_like(x), target=t,
             n_steps=16, method="riemann_trapezoid", attribute_to_neuron_input=on_input),
         lambda: None),
        ("shapley-sampling", lambda: explain("shapley-sampling", model, x, t, segments="grid",
                                             cells=4, samples=4),
         lambda: C.ShapleyValueSampling(model).attribute(
             x.clone(), target=t, baselines=0.0, feature_mask=mask[:1, None], n_samples=4,
             perturbations_per_eval=16), shapley_same),
        ("kernel-shap", lambda: explain("kernel-shap", model, x, t, segments="grid", cells=4,
                                        samples=64),
         lambda: [C.KernelShap(model).attribute(
             x[i:i + 1].clone(), target=t[i], baselines=0.0, feature_mask=mask[i:i + 1, None],
             n_samples=64, perturbations_per_eval=16) for i in range(n)],
         surrogate_same("kernel-shap", C.KernelShap)),
        ("lime", lambda: explain("lime", model, x, t, segments="grid", cells=4, samples=64),
         lambda: [C.Lime(model).attribute(
             x[i:i + 1].clone(), target=t[i], baselines=0.0, feature_mask=mask[i:i + 1, None],
             n_samples=64, perturbations_per_eval=16) for i in range(n)],
         surrogate_same("lime", C.Lime)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    lm, x8 = lite0_photos(8)
    model = lm.model
    refs = torch.stack([torch.zeros_like(x8[0]), x8.mean(0), x8[0].mean((1, 2), keepdim=True)
                        .expand_as(x8[0])])
    layer = str(default_layer(model, x8[:1]))
    print(f"{'method':20} {'batch':>5} {'max |diff| / max |a|':>21} {'netscope/fwd':>13} "
          f"{'Captum/fwd':>11} {'ratio':>6}")
    for b in (int(v) for v in args.batches.split(",")):
        x = x8[:b]
        with torch.no_grad():
            t = model(x).argmax(1).tolist()
            fwd = timed(lambda: model(x), 5)  # noqa: B023
        for name, ours, theirs, same in cases(model, x, t, refs, layer):
            pair = same()
            diff = "-" if pair is None else \
                f"{float((pair[0] - pair[1]).abs().max() / pair[1].abs().max()):.1e}"
            t_ours, t_peer = timed(ours), timed(theirs)
            print(f"{name:20} {b:5} {diff:>21} {t_ours / fwd:13.1f} {t_peer / fwd:11.1f} "
                  f"{t_ours / t_peer:6.2f}", flush=True)


if __name__ == "__main__":
    main()
