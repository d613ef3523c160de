"""Reference implementations the tests (and benchmarks) compare netscope's fast paths with:
the plain, slow way a course notebook would do it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netscope.multitask.networks.optim import OptimizerSpec


def train_per_task_loop(params: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor,
                        plan: np.ndarray, spec: OptimizerSpec) -> dict[str, torch.Tensor]:
    """The plain reference: a separate torch model and optimizer per task, in a Python loop."""
    n_layers = len(params) // 2
    out = {k: v.clone() for k, v in params.items()}
    for t in range(plan.shape[1]):
        layers: list[nn.Module] = []
        for layer in range(n_layers):
            W = params[f"W{layer}"][t]
            lin = nn.Linear(W.shape[0], W.shape[1], dtype=W.dtype)
            with torch.no_grad():
                lin.weight.copy_(W.T)
                lin.bias.copy_(params[f"b{layer}"][t])
            layers += [lin, nn.ReLU()] if layer < n_layers - 1 else [lin]
        net = nn.Sequential(*layers)
        opt = spec.torch(net.parameters())
        for step in plan[:, t]:
            rows = step[step >= 0]
            if rows.size == 0:
                continue
            opt.zero_grad()
            loss = ((net(X[rows]).squeeze(-1) - y[rows]) ** 2).mean()
            loss.backward()
            opt.step()
        for layer in range(n_layers):
            out[f"W{layer}"][t] = net[2 * layer].weight.detach().T
            out[f"b{layer}"][t] = net[2 * layer].bias.detach()
    return out
