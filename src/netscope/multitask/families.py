"""Every model family, declared once: its key, label, what it is, which target kinds it
takes, its settings with their defaults, and how its estimator is built from them.

The command line's flags and ``--help`` (``cli/multitask.py``), ``Settings`` (the run's
hyper-parameters), ``results.json`` and the report all read this table, so a new family is
one estimator file and one entry below. This module imports no PyTorch or SciPy: the
command line lists the families and their flags without loading them; an estimator is
imported when it is first built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import import_module
from typing import Any

from netscope.errors import NetscopeError
from netscope.multitask.balancing.registry import BALANCINGS, check_balancings, check_installed

KINDS = ("regression", "binary", "multiclass", "count")


@dataclass(frozen=True)
class Setting:
    """One hyper-parameter: name (``--name-with-dashes`` on the command line), default, help,
    and what values it takes (a number in [lo, hi], ``count`` of them for a tuple (0: any
    number of them), or one of ``choices``)."""

    name: str
    default: Any
    help: str
    cast: type = int
    lo: float | None = None
    hi: float | None = None
    above: bool = False  # lo itself is not allowed
    count: int | None = None
    choices: tuple[str, ...] | None = None
    group: str = "hyper-parameters"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """The value in its canonical form (tuples for lists), or an error saying what is
        allowed."""
        if self.choices is not None:
            if value not in self.choices:
                raise NetscopeError(f"settings: {self.name} must be one of "
                                    f"{', '.join(self.choices)}, got {value!r}.")
            return value
        if self.count is not None:
            values = tuple(value) if isinstance(value, list | tuple) else (value,)
            if (self.count and len(values) != self.count) or not values:
                need = f"{self.count} values" if self.count else "at least one value"
                raise NetscopeError(f"settings: {self.name} needs {need}, got {value!r}.")
            return tuple(self._one(v, f"{self.name}[{i}]") for i, v in enumerate(values))
        return self._one(value, self.name)

    def _one(self, value: Any, name: str) -> Any:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and \
            math.isfinite(value) and (self.cast is float or int(value) == value)
        low = self.lo is None or (value > self.lo if self.above else value >= self.lo) \
            if ok else False
        high = self.hi is None or value <= self.hi if ok else False
        if not (ok and low and high):
            raise NetscopeError(f"settings: {name} must be {self.allowed()}, got {value!r}.")
        return self.cast(value)

    def allowed(self) -> str:
        noun = "a whole number" if self.cast is int else "a number"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.above else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"<= {self.hi:g}")
        return f"{noun} {' and '.join(parts)}".strip()


# -- settings several families share -------------------------------------------------------
SEED = Setting("seed", 0, "random seed (splits, initial weights, inner folds)", lo=0,
               hi=2**32 - 1, group="general")
BATCH = Setting("batch_size", 32, "mini-batch rows (the neural families)", lo=1, hi=10_000_000)
LR = Setting("lr", 1e-3, "learning rate (per-task, pooled and task-gated networks)", float,
             lo=0, hi=10, above=True)
DECAY = Setting("weight_decay", 0.0, "L2 on the networks' weights (0: the course)", float,
                lo=0, hi=100)
FOLDS = Setting("ridge_folds", 3, "inner cross-validation folds of the linear families' "
                "penalty search", lo=2, hi=100)
POOLED_HIDDEN = Setting("pooled_hidden", (32, 16), "hidden widths of the pooled MLP (the "
                        "shared trunk takes its two layers)", lo=1, hi=4096, count=0)
POOLED_EPOCHS = Setting("pooled_epochs", 20, "epochs of the pooled MLP (and of the pooled "
                        "start of the shared trunk)", lo=1, hi=100_000)
STAGE_EPOCHS = Setting("stage_epochs", (10, 10, 10), "epochs of the shared trunk's three "
                       "stages, e.g. 10,10,10", lo=0, hi=100_000, count=3)
STAGE_LR = Setting("stage_lr", (1e-3, 1e-4, 1e-5), "learning rates of the three stages, "
                   "e.g. 1e-3,1e-4,1e-5", float, lo=0, hi=10, above=True, count=3)
SHARED_REDUCE = Setting("shared_reduce", "sum", "how the shared layers combine the tasks' "
                        "steps", str, choices=("sum", "mean"))
TRAINING = Setting("training", "auto", "how the networks are trained: fixed (the course's "
                   "epochs and rates) or tuned (epochs by early stopping, learning rate, width "
                   "and weight decay by a small search, all on an inner validation share of "
                   "the training rows); auto: fixed for the built-in data under the lecture "
                   "protocol (the course's numbers), tuned otherwise",
                   str, choices=("auto", "fixed", "tuned"), group="general")
MAX_EPOCHS = Setting("max_epochs", 300, "most epochs a tuned network trains (per stage for "
                     "the shared trunk)", lo=1, hi=100_000)
PATIENCE = Setting("patience", 10, "epochs without a better validation loss before a tuned "
                   "network stops", lo=1, hi=10_000)
MIXED_COV = Setting("mixed_cov", "factor1", "random-effects covariance of the mixed model: "
                    "full, diagonal, or rank-r factors plus a diagonal", str,
                    choices=("full", "diag", "factor1", "factor2", "factor3"))

BALANCE_LR = Setting("balance_lr", 1e-2, "learning rate of the balancing weights that are "
                     "learned (uncertainty weighting, GradNorm)", float, lo=0, hi=10, above=True)
JOINT_EPOCHS = Setting("joint_epochs", 30, "epochs of the expert networks (shared-bottom, "
                       "MMoE, PLE, cross-stitch)", lo=1, hi=100_000)
EXPERT_WIDTHS = Setting("expert_widths", (32, 16), "hidden widths of each expert (and of the "
                        "shared bottom and each cross-stitch column), e.g. 32,16", lo=1,
                        hi=4096, count=0)
EXPERTS = Setting("experts", 4, "shared experts of MMoE and of each PLE level", lo=1, hi=256)
TOWER = Setting("tower_hidden", 8, "hidden width of each task's tower (expert networks)",
                lo=1, hi=4096)
PLE_SPECIFIC = Setting("ple_specific", 1, "experts of each task's own at each PLE level",
                       lo=0, hi=64)
PLE_LEVELS = Setting("ple_levels", 2, "extraction levels of PLE (1: CGC)", lo=1, hi=8)

Params = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class Family:
    """A model family. ``estimator`` is "module:Class" (imported when first built);
    ``params`` maps the run's ``Settings`` to the estimator's keywords. ``reuses`` names
    families whose fitted models this one starts from or combines (fit first, on the same
    rows, and their time counted); ``task_gain`` whether the report plots its per-task
    error against ridge per task (it shares strength across tasks)."""

    key: str
    label: str
    description: str
    estimator: str
    settings: tuple[Setting, ...] = ()
    params: Params = field(default=lambda s: {}, compare=False)
    # each target kind it takes -> (its label, the estimator keywords of that form)
    forms: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict, compare=False)
    reuses: tuple[str, ...] = ()
    task_gain: bool = False
    native_missing: bool = False  # takes missing feature values as they are (no imputing)
    # which layouts it takes: "grouped" (rows in tasks) and "targets" (several targets on
    # the same rows: each target a task); in the second, a family without shared
    # parameters is fit on each target alone (the independent baseline)
    layouts: tuple[str, ...] = ("grouped",)
    default: bool = True  # runs on grouped data without --families
    balances: bool = False  # has shared parameters whose tasks' gradients --balancing combines
    balancing: str = "sum"  # this variant's strategy

    def with_balancing(self, name: str) -> Family:
        """This family trained with balancing strategy ``name`` (its own row in a run)."""
        if name == "sum" or not self.balances:
            return self
        base = self.params
        return replace(self, key=f"{self.key}+{name}",
                       label=f"{self.label}, {BALANCINGS[name].label}",
                       params=lambda s: {**base(s), "balancing": name}, balancing=name)

    @property
    def kinds(self) -> tuple[str, ...]:
        several = ("multiclass",) if "binary" in self.forms else ()
        return tuple(dict.fromkeys(("regression", *self.forms, *several)))

    def for_kind(self, kind: str) -> Family:
        """This family's form for targets of ``kind``: its label, and its estimator built
        with the form's keywords (a logistic loss, a log-loss head). Several classes without
        a form of their own: one yes/no model per class against the rest (one_vs_rest.py)."""
        if kind == "regression":
            return self
        if kind == "multiclass" and kind not in self.forms and "binary" in self.forms:
            return self._one_vs_rest()
        if kind not in self.forms:
            raise NetscopeError(f"model family {self.key!r} does not take {kind} targets yet.")
        label, extra = self.forms[kind]
        base = self.params
        if self.balancing != "sum":
            label = f"{label}, {BALANCINGS[self.balancing].label}"
        return replace(self, label=label, params=lambda s: {**base(s), **extra}, forms={},
                       description=f"{self.description} ({label})")

    def _one_vs_rest(self) -> Family:
        binary = self.for_kind("binary")
        label = f"{binary.label}, one-vs-rest"
        return replace(binary, label=label, estimator=_M + "one_vs_rest:OneVsRest",
                       params=lambda s: {"family": self.key, "member": binary.params(s)},
                       description=f"{self.description} ({label}: a yes/no model per class, "
                       f"probabilities normalized)")

    def estimator_class(self) -> type:
        module, _, name = self.estimator.partition(":")
        return getattr(import_module(module), name)

    def build(self, settings, progress=None):
        """The unfitted estimator for ``settings`` (a ``Settings``)."""
        return self.estimator_class()(**self.params(settings), progress=progress)

    def chosen(self, settings) -> dict[str, Any]:
        """This family's settings and their values in a run (for results.json)."""
        return {s.name: getattr(settings, s.name) for s in self.settings}


def glm_forms(stem: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The logistic, softmax and Poisson forms of a linear family."""
    return {"binary": (f"L2-logistic {stem}", {"loss": "log_loss"}),
            "multiclass": (f"L2-softmax {stem}", {"loss": "multinomial"}),
            "count": (f"L2-Poisson {stem}", {"loss": "poisson"})}


def head_forms(label: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The yes/no, several-class and count forms of a network: its output read as a
    log-odds (log loss), one output per class through a softmax, or a log-rate (Poisson
    loss)."""
    return {"binary": (f"{label} (log loss)", {"loss": "log_loss"}),
            "multiclass": (f"{label} (softmax)", {"loss": "multinomial"}),
            "count": (f"{label} (Poisson loss)", {"loss": "poisson"})}


_M = "netscope.multitask."
_RIDGE = (FOLDS, SEED)


def _ridge(s) -> dict[str, Any]:
    return {"folds": s.ridge_folds, "seed": s.seed}


def _tuning(s) -> dict[str, Any]:
    return {"tune": s.training == "tuned", "max_epochs": s.max_epochs, "patience": s.patience}


def _trunk(method: str) -> Params:
    return lambda s: {"method": method, "stage_epochs": s.stage_epochs, "stage_lr": s.stage_lr,
                      "batch_size": s.batch_size, "optimizer": "adam",
                      "shared_reduce": s.shared_reduce, "pooled_epochs": s.pooled_epochs,
                      "seed": s.seed, "weight_decay": s.weight_decay,
                      "balance_lr": s.balance_lr, **_tuning(s)}


_TUNING = (TRAINING, MAX_EPOCHS, PATIENCE)
_TRUNK = (STAGE_EPOCHS, STAGE_LR, SHARED_REDUCE, BATCH, DECAY, SEED, BALANCE_LR, *_TUNING)
_JOINT = (JOINT_EPOCHS, EXPERT_WIDTHS, TOWER, BATCH, LR, DECAY, SEED, BALANCE_LR, *_TUNING)


def _joint(architecture: str) -> Params:
    return lambda s: {"architecture": architecture, "widths": s.expert_widths,
                      "tower": s.tower_hidden, "experts": s.experts,
                      "specific": s.ple_specific, "levels": s.ple_levels,
                      "epochs": s.joint_epochs, "batch_size": s.batch_size, "lr": s.lr,
                      "seed": s.seed, "weight_decay": s.weight_decay,
                      "balance_lr": s.balance_lr, **_tuning(s)}


def _expert_family(key: str, label: str, description: str, extra=()) -> Family:
    return Family(key, label, description, _M + "networks.joint:JointNetwork",
                  (*_JOINT, *extra), _joint(key), head_forms(label),
                  layouts=("grouped", "targets"), default=False, balances=True)

FAMILIES: dict[str, Family] = {f.key: f for f in [
    Family("ridge-per-task", "ridge per task",
           "independent ridge regression per task, penalty by inner CV",
           _M + "linear.ridge:RidgePerTask", _RIDGE, _ridge, glm_forms("per task")),
    Family("pooled-ridge", "pooled ridge", "one ridge regression for all rows",
           _M + "linear.ridge:PooledRidge", _RIDGE, _ridge, glm_forms("pooled"),
           layouts=("grouped", "targets")),
    Family("mtl-ridge", "mean-regularized MTL ridge",
           "Evgeniou & Pontil (2004): w_t = w_0 + v_t, both penalties by inner CV",
           _M + "linear.ridge:MeanRegularizedRidge", _RIDGE, _ridge,
           {"binary": ("mean-regularized MTL logistic", {"loss": "log_loss"}),
            "count": ("mean-regularized MTL Poisson", {"loss": "poisson"})}, task_gain=True),
    Family("per-task-mlp", "per-task MLP", "one MLP per task, trained as one batched program",
           _M + "networks.pertask:PerTaskMLP",
           (Setting("per_task_hidden", (30, 15), "hidden widths of each task's MLP, e.g. "
                    "30,15", lo=1, hi=4096, count=0),
            Setting("per_task_epochs", 5, "epochs of the per-task MLPs", lo=1, hi=100_000),
            Setting("per_task_optimizer", "rmsprop", "update rule of the per-task MLPs", str,
                    choices=("rmsprop", "adam", "sgd")), BATCH, LR, DECAY, SEED, *_TUNING),
           lambda s: {"hidden": s.per_task_hidden, "epochs": s.per_task_epochs,
                      "batch_size": s.batch_size, "optimizer": s.per_task_optimizer,
                      "lr": s.lr, "seed": s.seed, "weight_decay": s.weight_decay,
                      **_tuning(s)},
           head_forms("per-task MLP")),
    Family("pooled-mlp", "pooled MLP", "one MLP for all rows, task ignored",
           _M + "networks.pooled:PooledMLP",
           (POOLED_HIDDEN, POOLED_EPOCHS, BATCH, LR, DECAY, SEED, *_TUNING),
           lambda s: {"hidden": s.pooled_hidden, "epochs": s.pooled_epochs,
                      "batch_size": s.batch_size, "optimizer": "adam", "lr": s.lr,
                      "seed": s.seed, "weight_decay": s.weight_decay, **_tuning(s)},
           head_forms("pooled MLP"), layouts=("grouped", "targets")),
    Family("shared-trunk-accumulate", "shared trunk (accumulate)",
           "pooled MLP's hidden layers shared, a head per task; all tasks' gradients "
           "before each update; staged unfreezing (time includes the pooled start)",
           _M + "networks.shared_trunk:SharedTrunkMTL", _TRUNK, _trunk("accumulate"),
           head_forms("shared trunk (accumulate)"), reuses=("pooled-mlp",), task_gain=True,
           balances=True, layouts=("grouped", "targets")),
    Family("shared-trunk-random", "shared trunk (random batches)",
           "as above, but per-task mini-batches in random order, each applied at once",
           _M + "networks.shared_trunk:SharedTrunkMTL", _TRUNK, _trunk("random"),
           head_forms("shared trunk (random batches)"), reuses=("pooled-mlp",)),
    Family("task-gated", "task-gated network",
           "sigmoid(task embedding) gates a Dense(32) projection; Dense 16; linear output",
           _M + "networks.gated:TaskGatedMLP",
           (Setting("gated_width", 32, "task embedding and projection width", lo=1, hi=4096),
            Setting("gated_hidden", 16, "width of the layer after the gate", lo=1, hi=4096),
            Setting("gated_epochs", 20, "epochs of the task-gated network", lo=1, hi=100_000),
            BATCH, LR, DECAY, SEED, BALANCE_LR, *_TUNING),
           lambda s: {"width": s.gated_width, "hidden": s.gated_hidden,
                      "epochs": s.gated_epochs, "batch_size": s.batch_size,
                      "optimizer": "adam", "lr": s.lr, "seed": s.seed,
                      "weight_decay": s.weight_decay, "balance_lr": s.balance_lr,
                      **_tuning(s)},
           head_forms("task-gated network"),
           task_gain=True, balances=True, layouts=("grouped", "targets")),
    Family("mixed-effects", "mixed-effects model",
           "random intercept and slopes per task, learned covariance, REML (lme4's model)",
           _M + "linear.mixed:MixedEffects", (MIXED_COV,), lambda s: {"cov": s.mixed_cov},
           {"binary": ("mixed-effects logistic", {"loss": "log_loss"}),
            "count": ("mixed-effects Poisson", {"loss": "poisson"})}),
    Family("boosted-trees", "boosted trees",
           "gradient-boosted trees, task as a categorical feature; trees, leaves and L2 "
           "chosen on inner validation rows",
           _M + "trees.boosted:BoostedTrees", (SEED,),
           lambda s: {"seed": s.seed, "threads": 1},
           {"binary": ("boosted trees (log loss)", {"loss": "log_loss"}),
            "count": ("boosted trees (Poisson loss)", {"loss": "poisson"})},
           native_missing=True, layouts=("grouped", "targets")),
    Family("mixed-boosting", "mixed-effects boosting",
           "boosted trees for the fixed part plus random intercept and slopes per task "
           "(GPBoost's model), alternating rounds of trees and mixed-model fits; rounds by "
           "early stopping on inner validation rows",
           _M + "trees.mixed_boosting:MixedBoosting", (MIXED_COV, SEED),
           lambda s: {"cov": s.mixed_cov, "seed": s.seed, "threads": 1},
           {"binary": ("mixed-effects boosting (logistic)", {"loss": "log_loss"}),
            "count": ("mixed-effects boosting (Poisson)", {"loss": "poisson"})}),
    Family("learned-task-covariance", "learned task covariance (MTRL)",
           "Zhang & Yeung (2010): shared weights plus task deviations coupled by a learned "
           "task covariance; penalties by inner CV",
           _M + "linear.task_covariance:LearnedTaskCovariance", _RIDGE, _ridge,
           {"binary": ("learned task covariance (MTRL, logistic)", {"loss": "log_loss"}),
            "count": ("learned task covariance (MTRL, Poisson)", {"loss": "poisson"})}),
    Family("ensemble", "ensemble (MTL ridge + mixed + trees)",
           "weighted average of mean-regularized ridge, mixed-effects and boosted trees; "
           "weights on held-out training rows (time includes the members)",
           _M + "ensemble:Ensemble", (SEED,), lambda s: {"seed": s.seed},
           {"binary": ("ensemble (MTL logistic + mixed + trees)", {"loss": "log_loss"}),
            "multiclass": ("ensemble (MTL + mixed + trees, several classes)",
                           {"loss": "multinomial"}),
            "count": ("ensemble (MTL Poisson + mixed + trees)", {"loss": "poisson"})},
           reuses=("mtl-ridge", "mixed-effects", "boosted-trees")),
    _expert_family("shared-bottom", "shared-bottom network",
                   "one shared MLP (expert widths) and a tower per task, trained jointly on "
                   "the same rows (several targets: the course's shared trunk)"),
    _expert_family("mmoe", "MMoE", "Ma et al. (2018): shared experts, a softmax gate per task "
                   "over them, a tower per task", (EXPERTS,)),
    _expert_family("ple", "PLE", "Tang et al. (2020): shared experts and each task's own at "
                   "every level, gates per task (and a shared gate between levels)",
                   (EXPERTS, PLE_SPECIFIC, PLE_LEVELS)),
    _expert_family("cross-stitch", "cross-stitch network", "Misra et al. (2016): a column "
                   "network per task, mixed after each hidden layer by learned cross-stitch "
                   "units"),
]}


def all_settings() -> list[Setting]:
    """Every family's settings once, in the order first declared (``seed`` first); the same
    name must be one declaration everywhere."""
    found: dict[str, Setting] = {SEED.name: SEED}
    for fam in FAMILIES.values():
        for s in fam.settings:
            if found.setdefault(s.name, s) != s:
                raise AssertionError(f"setting {s.name!r} is declared twice, differently")
    return list(found.values())


def families_for(kind: str, layout: str = "grouped", chosen: bool = False) -> list[str]:
    """The families that take targets of ``kind`` in ``layout``, in table order (without
    ``chosen``: those that run by default)."""
    return [k for k, f in FAMILIES.items() if kind in f.kinds and layout in f.layouts
            and (chosen or f.default or layout != "grouped")]


def family(key: str) -> Family:
    """A family by key, or a balancing variant by its key (``mmoe+upgrad``)."""
    base, _, balancing = key.partition("+")
    return FAMILIES[base].with_balancing(balancing) if balancing else FAMILIES[base]


def check_families(keys: Sequence[str], kind: str | None = None) -> list[str]:
    """The family keys as a list, or an error naming the first unknown one (or one that
    does not take targets of ``kind``)."""
    unknown = [k for k in keys if k not in FAMILIES]
    if unknown:
        raise NetscopeError(f"unknown model family {unknown[0]!r}; choose from "
                            f"{', '.join(FAMILIES)}.")
    if not keys:
        raise NetscopeError("no model family chosen; choose from " + ", ".join(FAMILIES) + ".")
    if kind is not None:
        wrong = [k for k in keys if kind not in FAMILIES[k].kinds]
        if wrong:
            raise NetscopeError(f"model family {wrong[0]!r} does not take {kind} targets yet; "
                                f"for {kind} targets choose from "
                                f"{', '.join(families_for(kind)) or '(none yet)'}.")
    return list(keys)


def with_balancing(keys: Sequence[str], names: Sequence[str]) -> list[str]:
    """The run's families with each family that has shared parameters once per balancing
    strategy (``key+name``; ``sum`` keeps the plain key); names checked, and their solvers
    (an aggregator whose extra is not installed fails here, before any training)."""
    names = check_balancings(names)
    for n in names:
        check_installed(n)
    out: list[str] = []
    for k in keys:
        variants = names if FAMILIES[k].balances else ("sum",)
        out += [k if n == "sum" else f"{k}+{n}" for n in variants]
    return out
