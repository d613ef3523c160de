"""netscope's sparse autoencoders against overcomplete 0.3's, in one process: the same start
(netscope's initial weights copied into overcomplete's model), the same batches, Adam and
gradient clipping as overcomplete's ``train_sae``; prints the largest difference of the
per-step losses and the final atoms, and steps per second of each (fastest of three
alternating rounds).

overcomplete declares torchvision and timm (never netscope's dependencies), so install it
beside the pinned torch without them and let this script stub what its package import
touches: `pip install --no-deps --target /tmp/oc/lib overcomplete tqdm einops`, then
`PYTHONPATH=/tmp/oc/lib python benchmarks/peer_overcomplete.py`.
"""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import torch


def _import_overcomplete():
    for name in ("torchvision", "torchvision.transforms", "timm", "open_clip"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    import matplotlib
    import matplotlib.cm

    if not hasattr(matplotlib.cm, "get_cmap"):  # removed from matplotlib 3.9
        matplotlib.cm.get_cmap = matplotlib.colormaps.get_cmap
    import overcomplete.sae as oc

    return oc


def copy_start(ours, theirs) -> None:
    """overcomplete's parameters set to netscope's initial ones."""
    with torch.no_grad():
        block = theirs.encoder.final_block[0]
        block.weight.copy_(ours.encoder.weight)
        block.bias.copy_(ours.encoder.bias)
        if hasattr(ours.dictionary, "weights"):
            theirs.dictionary._weights.copy_(ours.dictionary.weights)
        else:
            theirs.dictionary.W.copy_(ours.dictionary.mix)
            theirs.dictionary.Relax.copy_(ours.dictionary.relax)
            theirs.dictionary.multiplier.copy_(ours.dictionary.multiplier)


def run(model, batches, lr: float, ours: bool) -> tuple[list[float], float]:
    from netscope.vision.concepts.learn import sae_step

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    start = time.perf_counter()
    for x in batches:
        if ours:
            loss, _ = sae_step(model, opt, x)  # no auxiliary loss: overcomplete's plain MSE
        else:
            opt.zero_grad()
            _, _, x_hat = model(x)
            value = (x - x_hat).square().mean()
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            loss = float(value.detach())
        losses.append(loss)
    return losses, time.perf_counter() - start


def main() -> None:
    from netscope.vision.concepts.dictionaries import ArchetypalSAE, BatchTopKSAE, TopKSAE

    oc = _import_overcomplete()
    torch.manual_seed(0)
    C, K, k, B, steps, lr = 64, 256, 8, 128, 300, 1e-3
    data = torch.relu(torch.randn(B * steps, C) @ torch.randn(C, C) * 0.3)
    batches = list(data.split(B))
    points = data[torch.randperm(len(data))[:2 * K]]
    cases = {
        "topk-sae": (lambda: TopKSAE(C, K, k),
                     lambda: oc.TopKSAE(C, K, top_k=k)),
        "batchtopk-sae": (lambda: BatchTopKSAE(C, K, k),
                          lambda: oc.BatchTopKSAE(C, K, top_k=k * B)),
        "archetypal-sae": (lambda: ArchetypalSAE(C, K, k, points),
                           lambda: oc.RATopKSAE(C, K, points=points, top_k=k)),
    }
    print(f"{len(batches)} steps of {B} samples, {C} channels, {K} features, top-{k}")
    for name, (make_ours, make_theirs) in cases.items():
        t_ours = t_theirs = float("inf")
        for _ in range(3):  # fresh models each round, alternating; the fastest round counts
            torch.manual_seed(1)
            ours = make_ours()
            theirs = make_theirs()
            copy_start(ours, theirs)
            a, t = run(ours, batches, lr, True)
            t_ours = min(t_ours, t)
            b, t = run(theirs, batches, lr, False)
            t_theirs = min(t_theirs, t)
        ours.eval()
        theirs.eval()
        atoms = (ours.atoms() - theirs.get_dictionary()).abs().max().item()
        print(f"{name}: largest loss difference {np.max(np.abs(np.subtract(a, b))):.2e} "
              f"(final loss {a[-1]:.6f} / {b[-1]:.6f}), atoms {atoms:.2e}; steps/s "
              f"netscope {len(batches) / t_ours:.0f}, overcomplete "
              f"{len(batches) / t_theirs:.0f} ({t_theirs / t_ours:.2f}x)")


if __name__ == "__main__":
    main()
