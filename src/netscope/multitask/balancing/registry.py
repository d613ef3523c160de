"""Every gradient-balancing strategy, declared once: key, label, paper, what it is and
what it needs. The command line lists these without importing PyTorch or torchjd.

Three kinds:
- ``sum``: the course's rule (each task's step added on the shared layers);
- ``aggregator``: a Jacobian aggregator from torchjd, applied to the matrix whose rows are
  the tasks' gradients of the shared parameters (most are a weighting of its Gramian);
- ``weighting``: a loss weighting torchjd lacks, written here (``weightings.py``): the
  tasks' losses are weighted, shared and task-specific parameters alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netscope.errors import NetscopeError

KINDS = ("sum", "aggregator", "weighting")


@dataclass(frozen=True)
class Balancing:
    """One strategy. ``make`` is "module:Class" (a torchjd Weighting of the Gramian where
    ``gramian``, else an Aggregator of the Jacobian; or a weighting in this package);
    ``options`` its keywords; ``extra``/``modules``: the pip extra and the modules its solver
    needs (checked before a run starts)."""

    key: str
    label: str
    kind: str
    paper: str
    make: str = ""
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    gramian: bool = True
    extra: str | None = None
    modules: tuple[str, ...] = ()
    per_count: bool = False  # built for a fixed number of rows (one per count seen)
    draws: bool = False  # draws random numbers (seeded per step from the fit's seed)


_J = "torchjd.aggregation:"
_W = "netscope.multitask.balancing.weightings:"
_QP = ("quadprog-projector", ("qpsolvers", "quadprog"))
_CVX = ("cagrad", ("cvxpy", "clarabel"))
_NASH = ("nash-mtl", ("cvxpy", "ecos"))


def _b(key, label, kind, paper, make="", options=None, gramian=True, needs=(None, ()),
       per_count=False, draws=False) -> Balancing:
    return Balancing(key, label, kind, paper, make, options or {}, gramian, needs[0],
                     needs[1], per_count, draws)


BALANCINGS: dict[str, Balancing] = {b.key: b for b in [
    _b("sum", "sum (the course)", "sum", "each task's step added on the shared layers"),
    _b("mean", "mean", "aggregator", "the mean of the tasks' gradients", _J + "MeanWeighting"),
    _b("pcgrad", "PCGrad", "aggregator", "Yu et al. 2020: conflicting components projected "
       "away", _J + "PCGradWeighting"),
    _b("mgda", "MGDA", "aggregator", "Sener & Koltun 2018: the min-norm point of the "
       "gradients' convex hull", _J + "MGDAWeighting"),
    _b("cagrad", "CAGrad", "aggregator", "Liu et al. 2021: conflict-averse, c = 0.5",
       _J + "CAGradWeighting", {"c": 0.5}, needs=_CVX),
    _b("imtl-g", "IMTL-G", "aggregator", "Liu et al. 2021: equal projections onto the "
       "update", _J + "IMTLGWeighting"),
    _b("aligned-mtl", "Aligned-MTL", "aggregator", "Senushkin et al. 2023: the gradients' "
       "condition number aligned", _J + "AlignedMTLWeighting"),
    _b("dualproj", "DualProj", "aggregator", "the mean projected onto the gradients' dual "
       "cone", _J + "DualProjWeighting", needs=_QP),
    _b("upgrad", "UPGrad", "aggregator", "Quinton & Rey 2024: each gradient projected onto "
       "the dual cone, averaged", _J + "UPGradWeighting", needs=_QP),
    _b("nash-mtl", "Nash-MTL", "aggregator", "Navon et al. 2022: the Nash bargaining "
       "solution", _J + "NashMTL", gramian=False, needs=_NASH, per_count=True),
    _b("graddrop", "GradDrop", "aggregator", "Chen et al. 2020: signs dropped at random by "
       "their purity", _J + "GradDrop", gramian=False, draws=True),
    _b("fairgrad", "FairGrad", "aggregator", "Ban & Ji 2024: alpha-fair utilities, alpha 1",
       _J + "FairGradWeighting", {"alpha": 1.0}, needs=("fairgrad", ("scipy",))),
    _b("uncertainty", "uncertainty weighting", "weighting", "Kendall et al. 2018: each loss "
       "over twice its learned variance, plus half its log", _W + "Uncertainty"),
    _b("dwa", "DWA", "weighting", "Liu et al. 2019: weights by the losses' rate of descent "
       "over the last two epochs, temperature 2", _W + "DynamicWeightAverage"),
    _b("gradnorm", "GradNorm", "weighting", "Chen et al. 2018: weights learned so that "
       "gradient norms follow each loss's training rate, alpha 1.5", _W + "GradNorm"),
    _b("rlw", "random loss weighting", "weighting", "Lin et al. 2022: softmax of normal "
       "draws each step, times the number of tasks", _W + "RandomLossWeighting"),
]}

DEFAULT = ("sum",)


def check_balancings(names: Sequence[str]) -> tuple[str, ...]:
    """The names as a tuple, or an error naming the first unknown or repeated one."""
    names = tuple(names)
    if not names:
        raise NetscopeError("--balancing: no strategy given; choose from "
                            + ", ".join(BALANCINGS) + ".")
    for n in names:
        if n not in BALANCINGS:
            raise NetscopeError(f"unknown balancing {n!r}; choose from "
                                f"{', '.join(BALANCINGS)}.")
    seen = [n for i, n in enumerate(names) if n in names[:i]]
    if seen:
        raise NetscopeError(f"--balancing names {seen[0]!r} twice.")
    return names


def check_installed(name: str) -> None:
    """An error naming the pip extra when a strategy's solver is not installed (the
    weightings written here need nothing)."""
    from importlib.util import find_spec

    b = BALANCINGS[name]
    if b.kind != "aggregator":
        return
    missing = [m for m in ("torchjd", *b.modules) if find_spec(m) is None]
    if not missing:
        return
    hint = "pip install torchjd" if not b.modules else \
        f"pip install 'netscope[balancing]' (torchjd's {b.extra} extra)"
    raise NetscopeError(f"balancing {name!r} ({b.label}) needs {', '.join(missing)}, which "
                        f"is not installed; {hint}.")
