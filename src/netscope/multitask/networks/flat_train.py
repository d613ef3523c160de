"""Mini-batch training of tiny networks in NumPy, on one flat parameter vector.

The multi-task networks are a few thousand numbers trained on 32-row batches: each step is
microseconds of arithmetic, and PyTorch's per-operation cost (autograd graph, module calls,
optimizer bookkeeping: about 0.5 ms per step) was 90% of their training time. Here every
parameter is a view into one float64 vector, a network supplies a hand-written gradient
(checked against autograd in the tests), and ``StackedOptimizer`` (torch's update rules, in
NumPy) updates the whole vector in a few calls, so results equal ``torch.optim`` to rounding.
The same memory is exposed as torch tensors, so modules, state dicts and saved models are
unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from netscope.multitask.base import Progress
from netscope.multitask.linear.glm import mean_of
from netscope.multitask.networks.optim import OptimizerSpec, StackedOptimizer

# grad(rows, views_of_gradient) fills the gradient of the batch's mean squared error
GradFn = Callable[[np.ndarray, list[np.ndarray]], None]


class FlatParams:
    """One float64 vector holding every parameter, and a NumPy view per parameter."""

    def __init__(self, shapes: Sequence[tuple[int, ...]]) -> None:
        self.shapes = [tuple(s) for s in shapes]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.values = np.zeros(int(self.offsets[-1]))

    def views(self, flat: np.ndarray | None = None) -> list[np.ndarray]:
        """Views of ``flat`` (default: the values) shaped like each parameter."""
        flat = self.values if flat is None else flat
        return [flat[a:b].reshape(s) for a, b, s in zip(self.offsets[:-1], self.offsets[1:],
                                                           self.shapes, strict=True)]

    @classmethod
    def adopt(cls, params: Sequence[torch.nn.Parameter]) -> FlatParams:
        """Copy float64 torch parameters into one vector and make each parameter a view of it,
        so training here moves the module's weights in place."""
        if any(p.dtype != torch.float64 for p in params):
            raise TypeError("FlatParams.adopt takes float64 parameters (the multi-task "
                            "networks are built in float64).")
        flat = cls([tuple(p.shape) for p in params])
        for p, view in zip(params, flat.views(), strict=True):
            view[...] = p.detach().numpy()
            p.data = torch.from_numpy(view)
        return flat


def train_flat(grad_fn: GradFn, flat: FlatParams, n_rows: int, spec: OptimizerSpec,
               epochs: int, batch_size: int, seed: int, name: str,
               progress: Progress | None = None,
               after_epoch: Callable[[int], bool] | None = None) -> None:
    """Shuffled mini-batch training (Keras ``fit`` semantics: a new order every epoch, a
    short last batch); ``grad_fn`` sees the batch's row indices. ``after_epoch(epoch)``
    (early stopping) ends training when it returns True."""
    opt = StackedOptimizer(spec, 1)  # one "task": the whole vector
    one = np.zeros(1, dtype=np.int64)
    grad = np.zeros_like(flat.values)
    views = flat.views(grad)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        order = rng.permutation(n_rows)
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
            for start in range(0, n_rows, batch_size):
                grad_fn(order[start:start + batch_size], views)
                opt.tick(one)
                flat.values -= opt.delta("w", grad[None], one, flat.values[None])[0]
        if not np.isfinite(flat.values).all():
            raise FloatingPointError(f"{name}: training diverged in epoch {epoch + 1} "
                                     f"(non-finite weights); lower the learning rate.")
        if progress:
            progress(f"{name}: epoch {epoch + 1}/{epochs}")
        if after_epoch is not None and after_epoch(epoch + 1):
            break


def mse_residual(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d(mean squared error)/d(prediction), as a column."""
    return ((pred - y) * (2.0 / y.shape[0]))[:, None]


def output_residual(loss: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d(mean loss)/d(outputs) (n, outputs): squared error on the output itself, the log
    loss / Poisson loss of the output as a log-odds / log-rate (mean - y for both), or the
    log loss of softmax(outputs) for class codes y (probabilities - one-hot)."""
    if loss == "multinomial":
        P = mean_of(loss, z)
        P[np.arange(len(y)), y.astype(np.int64)] -= 1.0
        return P / y.shape[0]
    z = z[:, 0]
    if loss == "squared_error":
        return mse_residual(z, y)
    return ((mean_of(loss, z) - y) / y.shape[0])[:, None]


def output_loss(loss: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's loss on outputs z (n, outputs), or on one output per row of any shape:
    squared error, the log loss of a log-odds or of a softmax over class codes y, the
    Poisson loss of a log-rate (up to terms without z)."""
    if loss == "multinomial":
        top = z.max(1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(z - top).sum(1))
        return lse - z[np.arange(len(y)), y.astype(np.int64)]
    if loss == "squared_error":
        return (z - y) ** 2
    if loss == "log_loss":
        return np.logaddexp(0.0, z) - y * z
    return np.exp(np.clip(z, -50, 50)) - y * z


def n_outputs(loss: str, y: np.ndarray) -> int:
    """A network's outputs: one per class for several classes, else one."""
    return int(y.max()) + 1 if loss == "multinomial" else 1


def single(out: np.ndarray) -> np.ndarray:
    """(n, 1) outputs as (n,); one per class stays (n, K)."""
    return out[:, 0] if out.shape[1] == 1 else out


def dense_backward(d_out: np.ndarray, inputs: np.ndarray, W: np.ndarray, gW: np.ndarray,
                   gb: np.ndarray) -> np.ndarray:
    """Gradients of a Linear layer y = x W' + b (torch's (out, in) weight) given dL/dy;
    returns dL/dx."""
    np.matmul(d_out.T, inputs, out=gW)
    d_out.sum(0, out=gb)
    return d_out @ W
