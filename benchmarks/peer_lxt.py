"""netscope's AttnLRP rules against LXT's (the reference implementation of Achtibat et al.
2024), on the same inputs: the attention step (softmax_fn and matmul_fn composed as
softmax(q k^T) v) and layer norm (layer_norm_grad_fn), float64, stabilizers zero (LXT adds
epsilon without a sign, netscope with the sign of the denominator: both vanish at zero).

LXT is a reference, not a dependency: install it beside the pinned CPU torch in a separate
place (its explicit rules need only torch), e.g.

    python -m venv /tmp/lxtvenv && /tmp/lxtvenv/bin/pip install --no-deps lxt
    PYTHONPATH=.venv/lib/python3.11/site-packages /tmp/lxtvenv/bin/python benchmarks/peer_lxt.py

(torch and NumPy from netscope's own environment, LXT from its own).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from netscope.vision.methods.relevance.attention import Attention, layer_norm_over  # noqa: E402
from netscope.vision.methods.relevance.rules import Epsilon, Layer  # noqa: E402
from netscope.vision.methods.relevance.units import Unit  # noqa: E402


def _relative(ours, ref) -> float:
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours, ref, strict=True))


def attention_step(lf, draws: int = 5) -> float:
    worst = 0.0
    gen = torch.Generator().manual_seed(0)
    for _ in range(draws):
        q, k, v, R = (torch.randn(2, 3, 7, 5, dtype=torch.float64, generator=gen)
                      for _ in range(4))
        qi, ki, vi = (t.clone().requires_grad_(True) for t in (q, k, v))
        y = lf.matmul(lf.softmax(lf.matmul(qi, ki.transpose(-2, -1), epsilon=0.0), -1), vi,
                      epsilon=0.0)
        ref = torch.autograd.grad(y, (qi, ki, vi), R)
        unit = Attention("attention", 0.0, (1.0, False), "attnlrp")
        qj, kj, vj = (t.clone().requires_grad_(True) for t in (q, k, v))
        ours = torch.autograd.grad(unit(qj, kj, vj), (qj, kj, vj), R)
        worst = max(worst, _relative(ours, ref))
    return worst


def layer_norm_step(lf, draws: int = 5) -> float:
    worst = 0.0
    gen = torch.Generator().manual_seed(1)
    for _ in range(draws):
        x, R = (torch.randn(4, 9, 16, dtype=torch.float64, generator=gen) for _ in range(2))
        w, b = (torch.randn(16, dtype=torch.float64, generator=gen) for _ in range(2))
        xi = x.clone().requires_grad_(True)
        (ref,) = torch.autograd.grad(lf.layer_norm_grad_fn.apply(xi, w, b, 1e-5, 0.0), xi, R)
        unit = Unit(Layer("ln", layer_norm_over((16,), 1e-5), w, b), Epsilon(0.0))
        xj = x.clone().requires_grad_(True)
        (ours,) = torch.autograd.grad(unit(xj), xj, R)
        worst = max(worst, _relative([ours], [ref]))
    return worst


def main() -> None:
    import lxt
    import lxt.explicit.functional as lf

    version = getattr(lxt, "__version__", "2.x")
    print(f"LXT {version} explicit rules vs netscope, float64, relative to LXT's largest value:")
    print(f"  attention step (softmax, q k^T and A v uniform): {attention_step(lf):.2e}")
    print(f"  layer norm (SD held constant, epsilon rule):      {layer_norm_step(lf):.2e}")


if __name__ == "__main__":
    main()
