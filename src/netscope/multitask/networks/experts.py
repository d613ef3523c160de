"""Networks whose tasks share experts: shared-bottom, MMoE (Ma et al. 2018), CGC/PLE (Tang
et al. 2020) and cross-stitch (Misra et al. 2016), in PyTorch.

Each takes rows ``x`` (N, d) and each row's task ``t`` (N,) (a row is one observation: one
target of one table row, or one row of a grouped task) and returns the task's outputs
(N, K) (K: the most outputs any task has; one for numbers, yes/no and counts). The towers,
and gates read by one task only, are stacked with a leading task axis and gathered per row,
so many tasks cost what their rows cost. ``own`` lists the parameters that belong to one
task each (slice t of the first axis serves task t only); all others are shared, and their
per-task gradients are what a balancing strategy combines.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ARCHITECTURES = ("shared-bottom", "mmoe", "ple", "cross-stitch")


def _glorot(gen: torch.Generator, *shape: int) -> nn.Parameter:
    """Keras's Glorot uniform over the last two axes (fan in, fan out)."""
    limit = math.sqrt(6.0 / (shape[-2] + shape[-1]))
    return nn.Parameter((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1)
                        * limit)


def _zeros(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(shape, dtype=torch.float64))


class Experts(nn.Module):
    """``count`` ReLU MLPs of the same widths, run as one batched program: (N, in) -> (N,
    count, widths[-1]); or, with ``per_row`` True, (N, count, in) each expert on its own
    input."""

    def __init__(self, count: int, fan_in: int, widths: tuple[int, ...],
                 gen: torch.Generator) -> None:
        super().__init__()
        sizes = (fan_in, *widths)
        self.W = nn.ParameterList(_glorot(gen, count, a, b) for a, b in
                                  zip(sizes[:-1], sizes[1:], strict=True))
        self.b = nn.ParameterList(_zeros(count, b) for b in sizes[1:])
        self.count = count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(1).expand(-1, self.count, -1) if x.dim() == 2 else x
        for W, b in zip(self.W, self.b, strict=True):
            h = torch.relu(torch.einsum("nei,eio->neo", h, W) + b)
        return h


class Towers(nn.Module):
    """A small MLP per task on its representation: in -> hidden (ReLU) -> outputs."""

    def __init__(self, n_tasks: int, fan_in: int, hidden: int, outputs: int,
                 gen: torch.Generator) -> None:
        super().__init__()
        self.W0, self.b0 = _glorot(gen, n_tasks, fan_in, hidden), _zeros(n_tasks, hidden)
        self.W1, self.b1 = _glorot(gen, n_tasks, hidden, outputs), _zeros(n_tasks, outputs)

    def forward(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = torch.relu(torch.einsum("ni,nio->no", h, self.W0[t]) + self.b0[t])
        return torch.einsum("ni,nio->no", a, self.W1[t]) + self.b1[t]


def _gate(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Softmax gate weights (N, experts) for rows x (N, in) with per-row weights (N, in, E)."""
    return torch.softmax(torch.einsum("ni,nie->ne", x, W) + b, dim=-1)


class SharedBottom(nn.Module):
    """One shared MLP, a tower per task (the course's shared trunk with a head per task)."""

    own = ("towers.",)

    def __init__(self, n_features: int, n_tasks: int, outputs: int, widths=(32, 16),
                 tower=8, seed: int = 0, **_) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.bottom = Experts(1, n_features, tuple(widths), gen)
        self.towers = Towers(n_tasks, widths[-1], tower, outputs, gen)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.towers(self.bottom(x)[:, 0], t)


class MMoE(nn.Module):
    """Multi-gate mixture of experts: shared experts, a softmax gate per task over them
    (reading the row's features), a tower per task."""

    own = ("towers.", "gate_")

    def __init__(self, n_features: int, n_tasks: int, outputs: int, widths=(32, 16),
                 tower=8, experts: int = 4, seed: int = 0, **_) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.experts = Experts(experts, n_features, tuple(widths), gen)
        self.gate_W = _glorot(gen, n_tasks, n_features, experts)
        self.gate_b = _zeros(n_tasks, experts)
        self.towers = Towers(n_tasks, widths[-1], tower, outputs, gen)

    def gates(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _gate(x, self.gate_W[t], self.gate_b[t])

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mixed = (self.gates(x, t).unsqueeze(-1) * self.experts(x)).sum(1)
        return self.towers(mixed, t)


class PLE(nn.Module):
    """Progressive layered extraction: at each level, shared experts and each task's own
    experts; a task's gate mixes the shared experts and its own; below the last level a
    shared gate mixes all experts for the next level's shared experts. One level is CGC;
    with no experts of the tasks' own and one level it is MMoE."""

    def __init__(self, n_features: int, n_tasks: int, outputs: int, widths=(32, 16),
                 tower=8, experts: int = 4, specific: int = 1, levels: int = 1,
                 seed: int = 0, **_) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.n_tasks, self.levels = n_tasks, levels
        self.shared, self.specific = nn.ModuleList(), nn.ModuleList()
        self.gate_W, self.gate_b = nn.ParameterList(), nn.ParameterList()
        self.sgate_W, self.sgate_b = nn.ParameterList(), nn.ParameterList()
        fan_in = n_features
        for level in range(levels):
            self.shared.append(Experts(experts, fan_in, tuple(widths), gen))
            self.specific.append(Experts(n_tasks * specific, fan_in, tuple(widths), gen)
                                 if specific else nn.Identity())
            self.gate_W.append(_glorot(gen, n_tasks, fan_in, experts + specific))
            self.gate_b.append(_zeros(n_tasks, experts + specific))
            if level < levels - 1:
                total = experts + n_tasks * specific
                self.sgate_W.append(_glorot(gen, fan_in, total))
                self.sgate_b.append(_zeros(total))
            fan_in = widths[-1]
        self.n_specific = specific
        self.towers = Towers(n_tasks, widths[-1], tower, outputs, gen)
        last = levels - 1  # the last level's gates and own experts serve one task each
        self.own = ("towers.", f"gate_W.{last}", f"gate_b.{last}") + \
            ((f"specific.{last}.",) if specific else ())

    def _own_experts(self, level: int, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Task t's own experts on rows h (N, in): (N, specific, out), gathered per row."""
        ex, s = self.specific[level], self.n_specific
        idx = (t.unsqueeze(1) * s + torch.arange(s)).reshape(-1)  # (N * s,)
        z = h.repeat_interleave(s, 0)
        for W, b in zip(ex.W, ex.b, strict=True):
            z = torch.relu(torch.einsum("ni,nio->no", z, W[idx]) + b[idx])
        return z.reshape(h.shape[0], s, -1)

    def _all_own(self, level: int, h_tasks: torch.Tensor) -> torch.Tensor:
        """Every task's own experts on its input (N, T, in): (N, T * specific, out)."""
        return self.specific[level](h_tasks.repeat_interleave(self.n_specific, 1))

    def _last_inputs(self, x: torch.Tensor, t: torch.Tensor):
        """The last level's inputs: each row's task path (N, in) and the shared path."""
        n = x.shape[0]
        shared_in = x
        task_in = x.unsqueeze(1).expand(n, self.n_tasks, -1)  # every task's input
        for level in range(self.levels - 1):  # levels below the last: every task's path
            shared = self.shared[level](shared_in)  # (N, E, o)
            own = self._all_own(level, task_in) if self.n_specific else shared[:, :0]
            mine = own.reshape(n, self.n_tasks, self.n_specific, -1)
            pool = torch.cat([shared.unsqueeze(1).expand(-1, self.n_tasks, -1, -1), mine], 2)
            g = torch.softmax(torch.einsum("nti,tie->nte", task_in, self.gate_W[level])
                              + self.gate_b[level], -1)
            sg = torch.softmax(shared_in @ self.sgate_W[level] + self.sgate_b[level], -1)
            shared_in = (sg.unsqueeze(-1) * torch.cat([shared, own], 1)).sum(1)
            task_in = (g.unsqueeze(-1) * pool).sum(2)
        return task_in[torch.arange(n), t], shared_in

    def gates(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Each row's last-level gate weights: shared experts first, then the task's own."""
        h, _ = self._last_inputs(x, t)
        last = self.levels - 1
        return _gate(h, self.gate_W[last][t], self.gate_b[last][t])

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, shared_in = self._last_inputs(x, t)
        last = self.levels - 1
        shared = self.shared[last](shared_in)
        parts = [shared, self._own_experts(last, h, t)] if self.n_specific else [shared]
        g = _gate(h, self.gate_W[last][t], self.gate_b[last][t])
        return self.towers((g.unsqueeze(-1) * torch.cat(parts, 1)).sum(1), t)


class CrossStitch(nn.Module):
    """A column network per task; after each hidden layer every column takes a learned mix
    of all columns (cross-stitch units, started at 0.9 on its own column and 0.1 shared
    among the others); a tower per task on its column."""

    own = ("towers.",)

    def __init__(self, n_features: int, n_tasks: int, outputs: int, widths=(32, 16),
                 tower=8, seed: int = 0, **_) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.columns = nn.ModuleList()
        fan_in = n_features
        for w in widths:
            self.columns.append(Experts(n_tasks, fan_in, (w,), gen))
            fan_in = w
        off = 0.1 / max(n_tasks - 1, 1)
        start = torch.full((n_tasks, n_tasks), off, dtype=torch.float64)
        start.fill_diagonal_(0.9 if n_tasks > 1 else 1.0)
        self.stitch = nn.ParameterList(nn.Parameter(start.clone()) for _ in widths)
        self.towers = Towers(n_tasks, widths[-1], tower, outputs, gen)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = x
        for layer, alpha in zip(self.columns, self.stitch, strict=True):
            h = torch.einsum("ts,nsi->nti", alpha, layer(h))
        return self.towers(h[torch.arange(x.shape[0]), t], t)


NETWORKS = {"shared-bottom": SharedBottom, "mmoe": MMoE, "ple": PLE,
            "cross-stitch": CrossStitch}


def own_parameters(net: nn.Module) -> list[bool]:
    """For each of ``net.parameters()``: does it belong to one task per slice (True) or is
    it shared (False)."""
    prefixes = net.own
    return [name.startswith(prefixes) for name, _ in net.named_parameters()]
