"""Which map to trust: every attribution method on the same images and classes, scored by
every faithfulness metric, with the sanity check, in one call.

For each method: deletion AUC (lower is better), insertion AUC (higher), ROAD gap
(higher), average drop in confidence (lower), increase in confidence (higher), the
randomization sanity verdict, and the seconds per image its maps took. Methods are ranked by
their mean rank over the four faithfulness columns; a method that fails the sanity check is
ranked after every method that passes, whatever its scores (its maps do not depend on the
model). A method whose maps are all constant (a 1x1 grid, an image smaller than the
occlusion window) shows nothing: it is reported as uninformative and never ranked, whatever
its scores and sanity verdict. A ``random`` map is scored too, as the floor any method must
clear.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from netscope.errors import NetscopeError
from netscope.timing import time_left
from netscope.vision.core.batched import BATCH, class_scores
from netscope.vision.core.capture import capture
from netscope.vision.core.heatmaps import normalize_maps
from netscope.vision.core.targets import Resolved, resolve
from netscope.vision.methods.registry import METHODS, Method
from netscope.vision.metrics.choices import (  # noqa: F401 - re-exported
    BULK_DEFAULTS,
    METRICS,
    resolve_methods,
    resolve_metrics,
    wants_all,
)
from netscope.vision.metrics.faithfulness import (
    ConfidenceChange,
    Curve,
    confidence_change,
    deletion,
    insertion,
)
from netscope.vision.metrics.road import Road, road
from netscope.vision.metrics.sanity import Explain, SanityCheck, cascading_randomization
from netscope.vision.models.classes import class_label
from netscope.vision.models.zoo import LoadedModel


@dataclass(frozen=True)
class EvalSettings:
    metrics: tuple[str, ...] = METRICS  # which of them to compute (the sanity check: below)
    steps: int = 50  # deletion/insertion steps
    baseline: str = "blur"  # what deletion puts in place of pixels (insertion starts from it)
    road_percentages: tuple[float, ...] = (20, 50, 80)
    sanity: bool = True
    # evenly spaced depths of the cascading randomization compared: 2 = after half of the
    # parameter groups (from the head down), then after all of them
    sanity_checkpoints: int = 2
    batch_size: int = BATCH  # images per forward pass (metrics, and methods that take it)
    # settings of the methods by name (the registry's), each given to every method that
    # takes it, over BULK_DEFAULTS; e.g. {"layer": "features.3", "steps": 64}
    method_settings: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def check(self) -> None:
        """A method setting that no method has (a typo) is an error; one that only some
        methods read is given to those."""
        takes = {s.name for m in METHODS.values() for s in m.settings}
        unknown = [k for k in self.method_settings if k not in takes]
        if unknown:
            raise NetscopeError(f"no method has a setting {unknown[0]!r}; settings: "
                                f"{', '.join(sorted(takes))}.")

    def for_method(self, m: Method, bounds: tuple | None = None) -> dict[str, Any]:
        """The keywords method ``m`` runs with here (those it takes; ``bounds``: the model's
        input range, for the settings filled from it)."""
        return m.accepted({"batch_size": self.batch_size, "seed": self.seed,
                           **BULK_DEFAULTS, **self.method_settings,
                           **m.from_input(bounds)})


def explainer(name: str, s: EvalSettings, bounds: tuple | None = None) -> Explain:
    """(model, x, targets) -> maps of the registered method ``name`` under settings ``s``."""
    m = METHODS[name]
    kwargs = s.for_method(m, bounds)
    return lambda model, x, t: m(model, x, t, **kwargs).maps


NO_SANITY = ("random",)  # a random map has nothing to check
SAME = 1e-6  # maps (scaled to [0, 1]) closer than this are scored once


@dataclass
class MethodResult:
    method: str
    maps: torch.Tensor  # (N, h, w) in [0, 1]
    seconds_per_image: float
    deletion: Curve | None  # None: not asked for
    insertion: Curve | None
    road: Road | None
    confidence: ConfidenceChange | None
    sanity: SanityCheck | None
    constant: int = 0  # images whose map is the same value everywhere
    signed: torch.Tensor | None = None  # LRP: signed relevance in [-1, 1], for the pictures
    settings: dict = field(default_factory=dict)  # every setting the method ran with

    @property
    def uninformative(self) -> bool:
        return self.constant == self.maps.shape[0]

    def row(self) -> dict:
        """Means over images of every metric."""
        sanity = ("not run" if self.sanity is None
                  else "passes" if self.sanity.passed else "FAILS")
        return {
            "method": self.method,
            "deletion_auc": _mean(self.deletion and self.deletion.auc),
            "insertion_auc": _mean(self.insertion and self.insertion.auc),
            "road_gap": _mean(self.road and self.road.gap),
            "average_drop": _mean(self.confidence and self.confidence.drop),
            "increase_in_confidence": _mean(self.confidence and self.confidence.increase),
            "deletion_auc_sd": _sd(self.deletion and self.deletion.auc),
            "insertion_auc_sd": _sd(self.insertion and self.insertion.auc),
            "road_gap_sd": _sd(self.road and self.road.gap),
            "sanity": "uninformative (constant maps)" if self.uninformative else sanity,
            "sanity_spearman": None if self.sanity is None or self.uninformative
            else self.sanity.final_spearman,
            "constant_maps": self.constant,
            "seconds_per_image": self.seconds_per_image,
        }


def _mean(values: torch.Tensor | None) -> float | None:
    return None if values is None else float(values.mean())


def _sd(values: torch.Tensor | None) -> float | None:
    """SD over images: how much a method's score depends on the image (0 for one image)."""
    if values is None:
        return None
    return float(values.std()) if values.numel() > 1 else 0.0


CONSTANT = 1e-6  # a map whose range is below this (after scaling to [0, 1]) is constant

# column -> True when higher is better
SCORED = {"deletion_auc": False, "insertion_auc": True, "road_gap": True,
          "average_drop": False}


BASELINES = ("random",)  # scored beside the methods, never named the most faithful


@dataclass
class Evaluation:
    names: list[str]
    images: list[np.ndarray]  # the RGB crops the model saw
    targets: list[int]
    labels: list[str]
    probabilities: list[float]
    settings: EvalSettings
    model_name: str
    results: list[MethodResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it does not apply
    seconds: float = 0.0

    def table(self) -> list[dict]:
        """One row per method, ranked (rank 1 = most faithful; see the module docstring)."""
        rows = [r.row() for r in self.results]
        shown = [row for row, res in zip(rows, self.results, strict=True)
                 if not res.uninformative]  # a constant map is never ranked
        scored = [c for c in SCORED if rows and rows[0][c] is not None]
        for r in rows:
            r.update({f"rank_{c}": None for c in scored}, mean_rank=float("nan"), rank=None)
        for col in scored:  # equal values share the better rank
            values = np.array([r[col] for r in shown])
            ranks = rankdata(-values if SCORED[col] else values, method="min") \
                if shown else []
            for r, rank in zip(shown, ranks, strict=True):
                r[f"rank_{col}"] = int(rank)
        for r in shown:
            r["mean_rank"] = float(np.mean([r[f"rank_{c}"] for c in scored])) if scored \
                else float("nan")
        shown.sort(key=lambda r: (r["sanity"] == "FAILS", r["mean_rank"]))
        for place, r in enumerate(shown):
            r["rank"] = place + 1
        return shown + [r for r in rows if r["rank"] is None]

    def __repr__(self) -> str:
        from netscope.render.evaluation import short_text

        return short_text(self)

    def _repr_html_(self) -> str:
        from netscope.render.evaluation import notebook_html

        return notebook_html(self)

    def best(self) -> dict | None:
        """The top-ranked method that did better than the random maps (when they were
        scored: a baseline is never "the most faithful method"); None when none did, or no
        method gave an informative map."""
        table = self.table()
        floor = self.floor(table)
        for r in table:
            if r["rank"] is None or r["method"] in BASELINES:
                continue
            if floor is not None and not r["mean_rank"] < floor["mean_rank"]:
                return None
            return r
        return None

    def floor(self, table: list[dict] | None = None) -> dict | None:
        """The random maps' ranked row, when they were scored."""
        table = self.table() if table is None else table
        return next((r for r in table if r["method"] in BASELINES and r["rank"] is not None),
                    None)

    def verdict(self) -> str:
        """The answer in one sentence, with what it rests on."""
        top, floor = self.best(), self.floor()
        n, steps = len(self.names), self.settings.steps
        if top is not None:
            beyond = (f", ahead of the random maps' {floor['mean_rank']:.1f}" if floor
                      else "; no random maps were scored to compare with")
            return (f"most faithful here: {top['method']} (mean rank "
                    f"{top['mean_rank']:.1f}{beyond}; {n} image(s), {steps} steps)")
        if floor is None or not any(r["rank"] is not None for r in self.table()
                                    if r["method"] not in BASELINES):
            return "no method gave an informative map here (every map is constant)"
        return (f"no method did better than random maps here ({n} image(s), {steps} "
                f"steps): on so few images and steps the ranking cannot tell them apart; "
                f"score more images and steps (vision evaluate --demo: all the sample "
                f"photos, 50 steps)")


def evaluate(lm: LoadedModel, images: Sequence[tuple[str, np.ndarray]],
             methods: Sequence[str] | str = "all", settings: EvalSettings | None = None,
             targets: Sequence[int] | None = None,
             progress: Callable[[str], None] | None = None) -> Evaluation:
    """Score ``methods`` on ``images`` ((name, RGB) pairs) for each image's top-1 class (or
    ``targets``)."""
    settings = settings or EvalSettings()
    names = resolve_methods(methods)
    settings.check()
    if not images:
        raise NetscopeError("give at least one image to evaluate.")
    say = progress or (lambda message: None)
    start = time.perf_counter()
    x = torch.cat([lm.preprocess.tensor(rgb) for _, rgb in images])
    with capture(lm.model, []), torch.no_grad():
        logits = lm.model(x)
    t = resolve(logits, targets)
    chosen = class_scores(logits, t, "prob")
    ev = Evaluation([n for n, _ in images], [lm.preprocess.image(rgb) for _, rgb in images],
                    t.tolist(), [class_label(lm.class_names, k) for k in t.tolist()],
                    chosen.tolist(), settings, lm.name)
    scored: dict[str, tuple] = {}  # the same maps (Grad-CAM, XGrad-CAM, HiResCAM and CAM at
    for i, name in enumerate(names):  # a GAP head, equal to SAME) have the same scores: once
        pace = time_left(time.perf_counter() - start, i, len(names))  # methods cost alike
        say(f"{name}: maps ({i + 1}/{len(names)} methods{pace})")
        try:
            ev.results.append(_score_method(lm, x, t, name, settings, say, scored))
        except NetscopeError as exc:
            if not wants_all(methods):
                raise
            ev.skipped[name] = str(exc)  # e.g. CAM on a model without a GAP + linear head
            say(f"{name}: skipped ({exc})")
    ev.seconds = time.perf_counter() - start
    return ev


def _score_method(lm: LoadedModel, x: torch.Tensor, t: Resolved, name: str,
                  s: EvalSettings, say: Callable[[str], None],
                  scored: dict[str, tuple]) -> MethodResult:
    bounds = lm.preprocess.bounds()
    explain = explainer(name, s, bounds)
    m = METHODS[name]
    began = time.perf_counter()
    heat = m(lm.model, x, t, **s.for_method(m, bounds))
    maps = normalize_maps(F.relu(heat.maps))
    seconds = (time.perf_counter() - began) / x.shape[0]
    key = next((k for k, (m, _) in scored.items()
                if m.shape == maps.shape and torch.allclose(m, maps, rtol=0, atol=SAME)), name)
    if key == name:
        say(f"{name}: {', '.join(s.metrics)}")
        scored[key] = (maps, (
            deletion(lm.model, x, maps, t, s.steps, s.baseline, s.batch_size)
            if "deletion" in s.metrics else None,
            insertion(lm.model, x, maps, t, s.steps, s.baseline, s.batch_size)
            if "insertion" in s.metrics else None,
            road(lm.model, x, maps, t, s.road_percentages, seed=s.seed,
                 batch_size=s.batch_size) if "road" in s.metrics else None,
            confidence_change(lm.model, x, maps, t, lm.preprocess)
            if "confidence" in s.metrics else None))
    dele, ins, rd, conf = scored[key][1]
    sanity = None
    if s.sanity and name not in NO_SANITY:
        say(f"{name}: sanity check")
        sanity = cascading_randomization(lm.model, x, explain, t, s.sanity_checkpoints, s.seed)
    flat = F.interpolate(maps[:, None].float(), size=tuple(x.shape[-2:]), mode="bilinear",
                         align_corners=False).flatten(1)  # as the map lies on the image
    constant = int(((flat.amax(1) - flat.amin(1)) <= CONSTANT).sum())
    if constant:
        say(f"{name}: {constant} of {maps.shape[0]} maps are constant (nothing to show)")
    settings = {k: v for k, v in {**m.defaults(), **s.for_method(m)}.items()
                if not hasattr(v, "shape") and k not in ("low", "high")}
    return MethodResult(name, maps, seconds, dele, ins, rd, conf, sanity, constant,
                        heat.signed(), settings)
