"""Networks that learn several tasks at once from shared experts (``experts.py``), trained
in PyTorch with any balancing strategy (``balancing/``).

A row of ``fit`` is one observation: features, a task and its target. Grouped data has one
per table row; several targets on the same rows give one per (row, target) present, with
``rows`` naming the table row, so a mini-batch takes whole table rows and every target they
carry (a target missing on a row is simply not an observation: a masked loss). Each task's
loss is the mean over its observations in the batch; ``sum`` adds them (the course's rule),
any other strategy gets the Jacobian of the tasks' losses with respect to the shared
parameters from one batched backward pass (``is_grads_batched``: vmap over the rows of an
identity matrix), never one pass per task.
"""

from __future__ import annotations

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.multitask.balancing.balancer import Balancer
from netscope.multitask.base import Progress, TaskRelations
from netscope.multitask.linear.glm import mean_of
from netscope.multitask.networks.experts import NETWORKS, own_parameters
from netscope.multitask.networks.pertask import row_loss
from netscope.multitask.networks.tuned import NETWORK_LOSSES, NetworkEstimator

LABELS = {"shared-bottom": "shared-bottom network", "mmoe": "MMoE", "ple": "PLE",
          "cross-stitch": "cross-stitch network"}


def task_means(per_obs: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each present task's mean loss (k,) and the tasks (k,), in task order."""
    present, inv = torch.unique(t, return_inverse=True)
    total = torch.zeros(len(present), dtype=per_obs.dtype).index_add(0, inv, per_obs)
    count = torch.bincount(inv, minlength=len(present)).to(per_obs.dtype)
    return total / count, present


def task_jacobian(losses: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """d losses[i] / d param for every i at once: (k, *param.shape) per parameter."""
    eye = torch.eye(len(losses), dtype=losses.dtype)
    grads = torch.autograd.grad(losses, params, grad_outputs=eye, is_grads_batched=True,
                                allow_unused=True, materialize_grads=True)
    return list(grads)


CODES = {"squared_error": 0, "log_loss": 1, "poisson": 2, "multinomial": 3}
NAMES = {code: name for name, code in CODES.items()}


def observation_loss(out: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                     kinds: torch.Tensor, n_classes: torch.Tensor) -> torch.Tensor:
    """Each observation's loss by its task's kind (codes in ``CODES``): squared error,
    log loss on a log-odds, Poisson loss on a log-rate, softmax log loss over the task's
    classes (outputs past them are masked)."""
    z = out[:, 0]
    kind = kinds[t]
    loss = torch.zeros_like(z)
    for name, code in CODES.items():
        if name != "multinomial":
            loss = torch.where(kind == code, row_loss(name, z, y), loss)
    if bool((kind == 3).any()):
        width = torch.arange(out.shape[1])
        masked = out.masked_fill(width[None, :] >= n_classes[t][:, None], float("-inf"))
        code = torch.where(kind == 3, y, torch.zeros_like(y)).clamp(0, out.shape[1] - 1)
        loss = torch.where(kind == 3, row_loss("multinomial", masked, code), loss)
    return loss




class JointNetwork(NetworkEstimator):
    """Shared-bottom, MMoE, PLE or cross-stitch (``architecture``) with a tower per task."""

    # tuned: the learning rate searched (x1, x3); widths and decay stay as given (each
    # setting trains every task at once: a larger grid would multiply the whole cost)
    grid = {"lr": (1, 3)}
    decay_alternative = None

    def __init__(self, *, architecture: str = "mmoe", widths: tuple[int, ...] = (32, 16),
                 tower: int = 8, experts: int = 4, specific: int = 1, levels: int = 1,
                 epochs: int = 30, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                 progress: Progress | None = None, weight_decay: float = 0.0,
                 loss: str = "squared_error", task_losses: tuple[str, ...] | None = None,
                 balancing: str = "sum", balance_lr: float = 1e-2, tune: bool = False,
                 max_epochs: int = 300, patience: int = 10) -> None:
        self.architecture = architecture
        self.widths = widths
        self.tower = tower
        self.experts = experts
        self.specific = specific
        self.levels = levels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.progress = progress
        self.weight_decay = weight_decay
        self.task_losses = task_losses
        self.balancing = balancing
        self.balance_lr = balance_lr
        self._training(loss, tune, max_epochs, patience)

    @property
    def label(self) -> str:  # what reports and messages call it: its architecture
        return LABELS.get(self.architecture, "joint network")

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X, y, tasks, fitted=None, rows=None) -> JointNetwork:
        """Fit on observations; ``rows`` (one per observation) names the table row each
        comes from, so mini-batches take whole rows (None: every observation its own row)."""
        self._check_settings()
        self._rows_all = None if rows is None else np.asarray(rows).reshape(-1)
        if self._rows_all is not None and self._rows_all.shape[0] != np.shape(y)[0]:
            raise NetscopeError(f"fit: {np.shape(y)[0]} observations but "
                                f"{self._rows_all.shape[0]} row ids.")
        try:
            return super().fit(X, y, tasks, fitted)
        finally:
            self._rows_all = None

    def _check_settings(self) -> None:
        if self.architecture not in NETWORKS:
            raise NetscopeError(f"architecture must be one of {', '.join(NETWORKS)}, got "
                                f"{self.architecture!r}.")
        if self.architecture in ("mmoe", "ple") and self.experts < 1:
            raise NetscopeError(f"{self.label} needs at least one shared expert, got "
                                f"experts={self.experts}.")
        if self.architecture == "ple" and (self.levels < 1 or self.specific < 0):
            raise NetscopeError(f"PLE needs levels >= 1 and specific >= 0, got levels="
                                f"{self.levels}, specific={self.specific}.")
        if not self.widths or min(self.widths) < 1 or self.tower < 1:
            raise NetscopeError(f"{self.label}: widths and tower must be >= 1, got "
                                f"{self.widths} and {self.tower}.")

    def _losses(self, n_tasks: int) -> tuple[str, ...]:
        losses = tuple(self.task_losses) if self.task_losses else (self.loss,) * n_tasks
        if len(losses) != n_tasks:
            raise NetscopeError(f"{self.label}: {len(losses)} task losses for {n_tasks} "
                                f"tasks.")
        for name in losses:
            if name not in NETWORK_LOSSES:
                raise NetscopeError(f"{self.label}: unknown loss {name!r}; choose from "
                                    f"{', '.join(NETWORK_LOSSES)}.")
        return losses

    def _hp(self) -> dict:
        return {"lr": self.lr, "width": 1, "weight_decay": self.weight_decay,
                "epochs": self.epochs}

    def _train(self, X, y, t, n_tasks, hp, stop) -> None:
        losses = self._losses(n_tasks)
        classes = np.ones(n_tasks, np.int64)
        for k, name in enumerate(losses):  # one loss for all (grouped): the data's classes;
            if name == "multinomial":  # a task of its own kind (a target): its classes
                rows = y if not self.task_losses else y[t == k]
                classes[k] = int(rows.max()) + 1 if rows.size else 2
        widths = tuple(max(1, int(w * hp["width"])) for w in self.widths)
        self._config = np.array([X.shape[1], n_tasks, int(classes.max()), self.tower,
                                 self.experts, self.specific, self.levels, *widths])
        self._build(self._config)
        self.kinds_ = torch.tensor([CODES[name] for name in losses])
        self.classes_per_task_ = torch.from_numpy(classes)
        self._fit_epochs(X, y, t, n_tasks, hp, stop)

    def _stopper(self, X, y, t, kind, n_tasks):
        """Early stopping on the validation observations: each scored by its own task's
        loss (targets of several kinds: squared error, log loss, deviance)."""
        from netscope.multitask.networks.tuned import EarlyStopping
        from netscope.multitask.targets import of_loss

        losses = self._losses(n_tasks)

        def score() -> float:
            total = 0.0
            for k in np.unique(t):
                rows = t == k
                mu = self._predict(X[rows], t[rows])
                total += float(of_loss(losses[k]).unit_loss(y[rows], mu).sum())
            return total / len(y)
        return EarlyStopping(score, self._snapshot, self.patience)

    def _build(self, config: np.ndarray) -> None:
        d, T, K, tower, experts, specific, levels, *widths = (int(v) for v in config)
        self.net_ = NETWORKS[self.architecture](d, T, K, widths=tuple(widths), tower=tower,
                                                experts=experts, specific=specific,
                                                levels=levels, seed=self.seed)

    def _batches(self, n_obs: int, rng: np.random.Generator):
        """Each epoch's mini-batches of observations: ``batch_size`` whole rows each."""
        rows = self._rows_all if self._train_mask is None or self._rows_all is None \
            else self._rows_all[self._train_mask]
        if rows is None:
            order = rng.permutation(n_obs)
            return [order[i:i + self.batch_size_] for i in range(0, n_obs, self.batch_size_)]
        ids, inv = np.unique(rows, return_inverse=True)
        by_row = np.argsort(inv, kind="stable")
        bounds = np.searchsorted(inv[by_row], np.arange(len(ids) + 1))
        order = rng.permutation(len(ids))
        out = []
        for i in range(0, len(ids), self.batch_size_):
            pick = order[i:i + self.batch_size_]
            out.append(np.concatenate([by_row[bounds[r]:bounds[r + 1]] for r in pick]))
        return out

    def _fit_epochs(self, X, y, t, n_tasks, hp, stop) -> None:
        net = self.net_
        params = list(net.parameters())
        own = own_parameters(net)
        opt = torch.optim.Adam(params, lr=hp["lr"], eps=1e-7, weight_decay=hp["weight_decay"])
        balancer = Balancer(self.balancing, n_tasks, self.seed, self.balance_lr)
        Xt, yt, tt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(t)
        rng = np.random.default_rng(self.seed)
        for epoch in range(1, hp["epochs"] + 1):
            for idx in self._batches(len(y), rng):
                idx = torch.from_numpy(idx)
                tb = tt[idx]
                per_obs = observation_loss(net(Xt[idx], tb), yt[idx], tb, self.kinds_,
                                           self.classes_per_task_)
                L, present = task_means(per_obs, tb)
                opt.zero_grad(set_to_none=True)
                if balancer.key == "sum":
                    L.sum().backward()
                else:
                    self._balanced(L, present, params, own, balancer)
                opt.step()
            balancer.end_epoch()
            if not all(torch.isfinite(p).all() for p in params):
                raise FloatingPointError(f"{self.label}: training diverged in epoch {epoch} "
                                         f"(non-finite weights); lower the learning rate.")
            if self.progress and stop is None:
                self.progress(f"{self.label} ({self.balancing}): epoch {epoch}/{hp['epochs']}")
            if stop is not None and stop(epoch):
                break
        self.balance_ = balancer.record()

    @staticmethod
    def _balanced(L, present, params, own, balancer: Balancer) -> None:
        """Shared parameters: the strategy's combination of the tasks' gradients; a task's
        own parameters: its gradient times the strategy's scale for it."""
        grads = task_jacobian(L, params)
        k = len(L)
        shared = [g.reshape(k, -1) for g, o in zip(grads, own, strict=True) if not o]
        J = torch.cat(shared, 1).numpy() if shared else np.zeros((k, 0))
        step = balancer.step(J, L.detach().numpy(), present.numpy())
        combined = torch.from_numpy(step.shared)
        scale = torch.from_numpy(step.scale)
        offset = 0
        for p, g, o in zip(params, grads, own, strict=True):
            if o:
                p.grad = torch.tensordot(scale, g, dims=1)
            else:
                p.grad = combined[offset:offset + p.numel()].reshape(p.shape).clone()
                offset += p.numel()

    # -- predicting ---------------------------------------------------------------------------
    def _outputs(self, X, t) -> torch.Tensor:
        with torch.no_grad():
            return self.net_(torch.from_numpy(X), torch.from_numpy(t))

    def _predict(self, X, t) -> np.ndarray:
        out = self._outputs(X, t).numpy()
        kinds = self.kinds_.numpy()[t]
        if (kinds == 3).any():
            if not (kinds == 3).all() or len(np.unique(self.classes_per_task_.numpy()[t])) > 1:
                raise NetscopeError(f"{self.label}: predict one task of several classes at a "
                                    f"time (its rows only).")
            return mean_of("multinomial", out[:, :int(self.classes_per_task_[t[0]])])
        pred = out[:, 0].copy()
        for code in np.unique(kinds):
            pred[kinds == code] = mean_of(NAMES[int(code)], out[kinds == code, 0])
        return pred

    def gate_weights(self, X, t) -> np.ndarray | None:
        """MMoE and PLE: each row's weights over the experts its task's (last) gate mixes
        (shared experts first, then the task's own); None for the other networks."""
        if not hasattr(self.net_, "gates"):
            return None
        with torch.no_grad():
            return self.net_.gates(torch.from_numpy(X), torch.from_numpy(t)).numpy()

    def task_relations(self) -> TaskRelations | None:
        """MMoE: each task's gate weights (mean softmax of its gate's bias) as an embedding."""
        if self.architecture != "mmoe":
            return None
        with torch.no_grad():
            return TaskRelations("embedding", torch.softmax(self.net_.gate_b, -1).numpy(),
                                 "the MMoE gates' bias weights over the experts", "gates")

    def fit_summary(self) -> list[str]:
        lines = super().fit_summary()
        record = getattr(self, "balance_", None)
        if record and record["balancing"] != "sum":
            lines.append(f"balancing {record['balancing']}: the tasks' gradients conflicted "
                         f"in {record['conflict_share']:.0%} of {record['steps']} steps")
        return lines

    def _state(self):
        return {**self.net_.state_dict(), "config": torch.from_numpy(self._config),
                "kinds": self.kinds_, "classes_per_task": self.classes_per_task_}

    def _set_state(self, state):
        self._config = state["config"].numpy()
        self._build(self._config)
        self.net_.load_state_dict({k: v for k, v in state.items()
                                   if k not in ("config", "kinds", "classes_per_task")})
        self.kinds_, self.classes_per_task_ = state["kinds"], state["classes_per_task"]
