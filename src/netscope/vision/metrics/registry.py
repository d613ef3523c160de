"""Every metric `vision evaluate` scores maps by, registered once beside the methods: its
columns (name, header, which way is better, what it means, whether it is ranked), its
settings, what it needs, and one function.

A metric function takes a ``scored.MetricInput`` (the model, the images, the maps scaled to
[0, 1], the targets, an ``explain`` callable that recomputes the maps, masks where given) and
its settings as keywords, and returns ``scored.Scores`` (per-image values per column, and
what the report draws). It never takes a method's name, as Captum's metrics take an
explanation function. `vision evaluate`, its ranking, the report, the notebook display and
the command line read this table, so a new metric is one function and one entry. This
module imports no PyTorch (the command line checks names against it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from netscope.errors import NetscopeError
from netscope.vision.methods.registry import Setting

FAIL_AT = 0.5  # the sanity check's threshold (as metrics.sanity.FAIL_AT, without PyTorch)


@dataclass(frozen=True)
class Column:
    """One number per image a metric reports. ``better``: "higher", "lower" or None (shown,
    not judged); ``ranked``: whether the ranking uses it; ``shown``: its format."""

    name: str
    header: str
    better: str | None
    meaning: str
    ranked: bool = True
    shown: str = ".3f"
    spread: bool = True  # the table shows ± the SD over images


@dataclass(frozen=True)
class Metric:
    """A registered metric. ``needs``: "method" (it recomputes maps through ``explain``,
    so equal maps of two methods are not scored once for both; random maps are not
    checked), "masks" (it runs only where masks are given). ``verdict``: a pass / FAILS
    verdict per method; a failing method is ranked after every passing one."""

    name: str
    label: str
    function: str  # "module:function", imported on first use
    columns: tuple[Column, ...]
    settings: tuple[Setting, ...] = ()
    needs: tuple[str, ...] = ()
    verdict: str | None = None  # what the verdict means, for the report
    default: bool = True  # in 'all'
    _impl: list = field(default_factory=list, compare=False, repr=False)

    def implementation(self) -> Callable[..., Any]:
        if not self._impl:
            module, _, name = self.function.partition(":")
            self._impl.append(getattr(import_module(module), name))
        return self._impl[0]

    def defaults(self) -> dict[str, Any]:
        return {s.name: s.default for s in self.settings}

    def __call__(self, inp, **settings):
        unknown = sorted(set(settings) - {s.name for s in self.settings})
        if unknown:
            raise NetscopeError(f"metric {self.name} has no setting {unknown[0]!r}.")
        for s in self.settings:
            if s.name in settings:
                s.check(settings[s.name], self.name)
        return self.implementation()(inp, **{**self.defaults(), **settings})


_M = "netscope.vision.metrics."
STEPS = Setting("steps", 50, "deletion/insertion steps", cast=int, lo=2, hi=1000)
SANITY_CHECKPOINTS = Setting("sanity_checkpoints", 2, "evenly spaced depths of the cascading "
                             "randomization compared (2: after half of the parameter groups "
                             "from the head down, then after all of them)", cast=int, lo=1,
                             hi=1000)
FILL = Setting("baseline", "blur", "what deletion puts in place of pixels and insertion "
               "starts from", ("blur", "mean", "zeros"))

METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("deletion", "deletion", _M + "faithfulness:deletion_scores",
           (Column("deletion_auc", "deletion AUC (lower)", "lower",
                   "area under the target's probability while pixels are replaced by the "
                   "baseline, most important first (Petsiuk et al. 2018): LOWER is better"),),
           (STEPS, FILL)),
    Metric("insertion", "insertion", _M + "faithfulness:insertion_scores",
           (Column("insertion_auc", "insertion AUC (higher)", "higher",
                   "area under the target's probability while pixels are restored onto the "
                   "baseline image, most important first: HIGHER is better"),),
           (STEPS, FILL)),
    Metric("road", "ROAD", _M + "road:road_scores",
           (Column("road_gap", "ROAD gap (higher)", "higher",
                   "ROAD (Rong et al. 2022): mean over the removal shares of p(least relevant "
                   "removed) - p(most relevant removed), holes filled by noisy linear "
                   "imputation: HIGHER is better"),),
           (Setting("road_percentages", (20.0, 50.0, 80.0), "ROAD: the shares of pixels "
                    "removed, percent", cast=float, lo=0, hi=100, above=True, below=True,
                    many=True),)),
    Metric("confidence", "confidence change", _M + "faithfulness:confidence_scores",
           (Column("average_drop", "average drop (lower)", "lower",
                   "mean of max(0, Y - O) / Y, Y the probability on the image, O on the "
                   "image multiplied by the map (Chattopadhay et al. 2018): LOWER is better",
                   shown=".1%", spread=False),
            Column("increase_in_confidence", "increase (higher)", "higher",
                   "share of images with O > Y: HIGHER is better", ranked=False,
                   shown=".0%", spread=False))),
    Metric("infidelity", "infidelity", _M + "infidelity:infidelity_scores",
           (Column("infidelity", "infidelity (lower)", "lower",
                   "mean squared error between the map's (best-scaled) dot product with "
                   "Gaussian perturbations and the target logit's change under them (Yeh et "
                   "al. 2019, Captum's infidelity with normalize=True): LOWER is better",
                   shown=".4g"),),
           (Setting("infidelity_samples", 16, "infidelity: perturbations per image",
                    cast=int, lo=1, hi=10_000),
            Setting("infidelity_noise", 0.1, "infidelity: the perturbations' SD, in the "
                    "model's input units", cast=float, lo=0, hi=100, above=True))),
    Metric("localisation", "localisation", _M + "localisation:localisation_scores",
           (Column("pointing_game", "pointing game (higher)", "higher",
                   "share of images whose map's maximum lies inside the object's mask "
                   "(Zhang et al. 2018): HIGHER is better", spread=False, shown=".0%"),
            Column("relevance_mass", "relevance mass (higher)", "higher",
                   "share of the map's mass inside the mask (Arras et al. 2022): HIGHER is "
                   "better"),
            Column("relevance_rank", "relevance rank (higher)", "higher",
                   "share of the K most relevant pixels inside the mask, K its size (Arras "
                   "et al. 2022): HIGHER is better"),
            Column("localisation_auc", "mask AUC (higher)", "higher",
                   "ROC AUC of the map as a pixel classifier of the mask (0.5: chance): "
                   "HIGHER is better")),
           needs=("masks",)),
    Metric("complexity", "complexity", _M + "complexity:complexity_scores",
           (Column("sparseness", "sparseness", "higher",
                   "Gini index of the map's values (Chalasani et al. 2020): higher = "
                   "sparser, easier to read; not ranked (not faithfulness)", ranked=False),
            Column("complexity", "complexity", "lower",
                   "entropy of the map as a distribution over pixels (Bhatt et al. 2020): "
                   "lower = simpler; not ranked (not faithfulness)", ranked=False))),
    Metric("max-sensitivity", "max-sensitivity", _M + "robustness:max_sensitivity_scores",
           (Column("max_sensitivity", "max-sensitivity (lower)", "lower",
                   "largest relative change of the map under uniform noise on the input "
                   "(Yeh et al. 2019; Captum's sensitivity_max, Quantus' MaxSensitivity): "
                   "lower = more robust; not ranked (not faithfulness)", ranked=False),),
           (Setting("sensitivity_samples", 10, "max-sensitivity: noise draws per image",
                    cast=int, lo=1, hi=10_000),
            Setting("sensitivity_radius", 0.02, "max-sensitivity: the uniform noise's "
                    "half-width, in the model's input units", cast=float, lo=0, hi=100,
                    above=True)),
           needs=("method",), default=False),
    Metric("local-lipschitz", "local Lipschitz estimate",
           _M + "robustness:local_lipschitz_scores",
           (Column("local_lipschitz", "local Lipschitz (lower)", "lower",
                   "largest ||map change|| / ||input change|| under Gaussian noise "
                   "(Alvarez-Melis & Jaakkola 2018, Quantus' LocalLipschitzEstimate): "
                   "lower = more robust; not ranked (not faithfulness)", ranked=False),),
           (Setting("lipschitz_samples", 10, "local Lipschitz: noise draws per image",
                    cast=int, lo=1, hi=10_000),
            Setting("lipschitz_sd", 0.1, "local Lipschitz: the Gaussian noise's SD, in the "
                    "model's input units", cast=float, lo=0, hi=100, above=True)),
           needs=("method",), default=False),
    Metric("emprt", "eMPRT", _M + "randomisation:emprt_scores",
           (Column("emprt", "eMPRT (higher)", "higher",
                   "relative change of the map's histogram entropy once every layer of a "
                   "copy of the model is re-initialized (Hedström et al. 2023): HIGHER = "
                   "the map depends more on what the model learned; not ranked",
                   ranked=False),),
           needs=("method",), default=False),
    Metric("smprt", "sMPRT", _M + "randomisation:smprt_scores",
           (Column("smprt_spearman", "sMPRT rho (lower)", "lower",
                   "Spearman correlation of the denoised map with the trained model's once "
                   "every layer is re-initialized (smooth MPRT, Hedström et al. 2023): "
                   "LOWER is better; not ranked", ranked=False),),
           (Setting("smprt_samples", 10, "sMPRT: noisy copies averaged per map (Quantus: "
                    "50)", cast=int, lo=1, hi=10_000),
            Setting("smprt_noise", 0.1, "sMPRT: noise SD as a fraction of the image's "
                    "range", cast=float, lo=0, hi=10),
            SANITY_CHECKPOINTS),
           needs=("method",), default=False),
    Metric("sanity", "sanity check", _M + "sanity:sanity_scores",
           (Column("sanity_spearman", "rho", None,
                   "Spearman correlation of the map with the trained model's map, every "
                   "layer re-initialized", ranked=False, shown=".2f", spread=False),),
           (SANITY_CHECKPOINTS,),
           needs=("method",),
           verdict=f"cascading randomization (Adebayo et al. 2018): FAILS when the map's "
                   f"Spearman correlation with the trained model's map is still >= "
                   f"{FAIL_AT} with every layer re-initialized, i.e. the map does not "
                   f"depend on what the model learned"),
)}


def metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise NetscopeError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}, "
                            f"or 'all'.") from None


def columns(chosen: tuple[str, ...] | None = None) -> list[tuple[Metric, Column]]:
    """(metric, column) in table order, of the ``chosen`` metrics (None: all)."""
    return [(m, c) for m in METRICS.values() if chosen is None or m.name in chosen
            for c in m.columns]
