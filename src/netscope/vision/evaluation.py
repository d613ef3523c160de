"""Which map to trust: every attribution method on the same images and classes, scored by
every metric of the metric table (``metrics.registry``: deletion, insertion, ROAD,
confidence change, the sanity check, ...), in one call.

For each method: every column of every metric chosen, and the seconds per image its maps
took. Methods are ranked by their mean rank over the ranked columns; a method that fails a
verdict (the sanity check) is ranked after every method that passes, whatever its scores
(its maps do not depend on the model). A method whose maps are all constant (a 1x1 grid,
an image smaller than the occlusion window) shows nothing: it is reported as uninformative
and never ranked, whatever its scores and sanity verdict. A ``random`` map is scored too,
as the floor any method must clear.
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
    default_metrics,
    resolve_methods,
    resolve_metrics,
    wants_all,
)
from netscope.vision.metrics.localisation import check_masks
from netscope.vision.metrics.registry import METRICS as METRIC_TABLE
from netscope.vision.metrics.registry import Metric, columns
from netscope.vision.metrics.scored import Explain, MetricInput, Scores
from netscope.vision.models.classes import class_label
from netscope.vision.models.zoo import LoadedModel


@dataclass(frozen=True)
class EvalSettings:
    # names in the metric table (default: all but the opt-in ones)
    metrics: tuple[str, ...] = field(default_factory=default_metrics)
    # settings of the metrics by name (the table's), each given to every metric that takes
    # it; e.g. {"steps": 20, "road_percentages": (50,), "sanity_checkpoints": 1}
    metric_settings: Mapping[str, Any] = field(default_factory=dict)
    # settings of the methods by name (the method registry's), each given to every method
    # that takes it, over BULK_DEFAULTS; e.g. {"layer": "features.3", "steps": 64}
    method_settings: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = BATCH  # images per forward pass (metrics, and methods that take it)
    seed: int = 0

    def check(self) -> None:
        """Unknown metric names, and settings that no method or metric has (a typo), are
        errors; a setting only some read is given to those."""
        resolve_metrics(self.metrics)
        for what, given, table in (("method", self.method_settings, METHODS),
                                   ("metric", self.metric_settings, METRIC_TABLE)):
            takes = {s.name for m in table.values() for s in m.settings}
            unknown = [k for k in given if k not in takes]
            if unknown:
                raise NetscopeError(f"no {what} has a setting {unknown[0]!r}; settings: "
                                    f"{', '.join(sorted(takes))}.")

    def for_method(self, m: Method, bounds: tuple | None = None) -> dict[str, Any]:
        """The keywords method ``m`` runs with here (those it takes; ``bounds``: the model's
        input range, for the settings filled from it)."""
        return m.accepted({"batch_size": self.batch_size, "seed": self.seed,
                           **BULK_DEFAULTS, **self.method_settings,
                           **m.from_input(bounds)})

    def for_metric(self, m: Metric) -> dict[str, Any]:
        """Every setting metric ``m`` runs with here (its defaults, and what was given)."""
        names = {s.name for s in m.settings}
        return {**m.defaults(), **{k: v for k, v in self.metric_settings.items()
                                   if k in names}}

    @property
    def steps(self) -> int:
        """Deletion / insertion steps (what the verdict says the ranking rests on)."""
        return self.for_metric(METRIC_TABLE["deletion"])["steps"]


def explainer(name: str, s: EvalSettings, bounds: tuple | None = None) -> Explain:
    """(model, x, targets) -> maps of the registered method ``name`` under settings ``s``,
    made non-negative and scaled to a maximum of 1 as the evaluated maps are."""
    m = METHODS[name]
    kwargs = s.for_method(m, bounds)
    return lambda model, x, t: normalize_maps(F.relu(m(model, x, t, **kwargs).maps))


BASELINES = ("random",)  # scored beside the methods, never named the most faithful
SAME = 1e-6  # maps (scaled to [0, 1]) closer than this are scored once
CONSTANT = 1e-6  # a map whose range is below this (after scaling to [0, 1]) is constant


@dataclass
class MethodResult:
    method: str
    maps: torch.Tensor  # (N, h, w) in [0, 1]
    seconds_per_image: float
    scores: dict[str, Scores] = field(default_factory=dict)  # metric name -> its scores
    constant: int = 0  # images whose map is the same value everywhere
    signed: torch.Tensor | None = None  # LRP: signed relevance in [-1, 1], for the pictures
    settings: dict = field(default_factory=dict)  # every setting the method ran with

    @property
    def uninformative(self) -> bool:
        return self.constant == self.maps.shape[0]

    def values(self, column: str) -> torch.Tensor | None:
        """Per-image values of a metric column; None where its metric was not run."""
        return next((s.values[column] for s in self.scores.values() if column in s.values),
                    None)

    def verdict(self, metric: str) -> str:
        """'passes', 'FAILS', 'not run', or 'uninformative (constant maps)'."""
        if self.uninformative:
            return "uninformative (constant maps)"
        got = self.scores.get(metric)
        return "not run" if got is None else "passes" if got.passed else "FAILS"

    def row(self) -> dict:
        """Means over images of every column of the metric table (None: not run), the SD
        where the table shows one, and each verdict."""
        row: dict[str, Any] = {"method": self.method}
        for m, c in columns():
            values = None if m.verdict and self.uninformative else self.values(c.name)
            row[c.name] = _mean(values)
            if c.spread:
                row[f"{c.name}_sd"] = _sd(values)
        for m in METRIC_TABLE.values():
            if m.verdict:
                row[m.name] = self.verdict(m.name)
        row.update(constant_maps=self.constant, seconds_per_image=self.seconds_per_image)
        return row


def _mean(values: torch.Tensor | None) -> float | None:
    return None if values is None else float(values.float().mean())


def _sd(values: torch.Tensor | None) -> float | None:
    """SD over images: how much a method's score depends on the image (0 for one image)."""
    if values is None:
        return None
    return float(values.float().std()) if values.numel() > 1 else 0.0


def _fails(row: dict) -> bool:
    return any(row.get(m.name) == "FAILS" for m in METRIC_TABLE.values() if m.verdict)


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
    not_run: dict[str, str] = field(default_factory=dict)  # metric -> why it was not run

    def ranked_columns(self, rows: list[dict] | None = None) -> list[tuple[str, bool]]:
        """(column, higher is better) of the ranked columns that hold values here."""
        rows = [r.row() for r in self.results] if rows is None else rows
        return [(c.name, c.better == "higher") for m, c in columns(self.settings.metrics)
                if c.ranked and rows and rows[0][c.name] is not None]

    def table(self) -> list[dict]:
        """One row per method, ranked (rank 1 = most faithful; see the module docstring)."""
        rows = [r.row() for r in self.results]
        shown = [row for row, res in zip(rows, self.results, strict=True)
                 if not res.uninformative]  # a constant map is never ranked
        scored = self.ranked_columns(rows)
        for r in rows:
            r.update({f"rank_{c}": None for c, _ in scored}, mean_rank=float("nan"),
                     rank=None)
        for col, higher in scored:  # equal values share the better rank
            values = np.array([r[col] for r in shown])
            ranks = rankdata(-values if higher else values, method="min") if shown else []
            for r, rank in zip(shown, ranks, strict=True):
                r[f"rank_{col}"] = int(rank)
        for r in shown:
            r["mean_rank"] = float(np.mean([r[f"rank_{c}"] for c, _ in scored])) if scored \
                else float("nan")
        shown.sort(key=lambda r: (_fails(r), r["mean_rank"]))
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
             progress: Callable[[str], None] | None = None,
             masks: torch.Tensor | None = None) -> Evaluation:
    """Score ``methods`` on ``images`` ((name, RGB) pairs) for each image's top-1 class (or
    ``targets``); ``masks`` (N, H, W) at the model's input size: where each object is, for
    the metrics that need them."""
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
    if masks is not None:
        masks = check_masks(masks, x)
    ev.not_run = {k: "no masks given (vision evaluate --masks DIR; evaluate(..., masks=))"
                  for k in settings.metrics if "masks" in METRIC_TABLE[k].needs
                  and masks is None}
    scored: dict[str, tuple] = {}  # the same maps (Grad-CAM, XGrad-CAM, HiResCAM and CAM at
    for i, name in enumerate(names):  # a GAP head, equal to SAME) have the same scores: once
        pace = time_left(time.perf_counter() - start, i, len(names))  # methods cost alike
        say(f"{name}: maps ({i + 1}/{len(names)} methods{pace})")
        try:
            ev.results.append(_score_method(lm, x, t, name, settings, say, scored, masks))
        except NetscopeError as exc:
            if not wants_all(methods):
                raise
            ev.skipped[name] = str(exc)  # e.g. CAM on a model without a GAP + linear head
            say(f"{name}: skipped ({exc})")
    ev.seconds = time.perf_counter() - start
    return ev


def _score_method(lm: LoadedModel, x: torch.Tensor, t: Resolved, name: str,
                  s: EvalSettings, say: Callable[[str], None], scored: dict[str, tuple],
                  masks: torch.Tensor | None = None) -> MethodResult:
    bounds = lm.preprocess.bounds()
    m = METHODS[name]
    began = time.perf_counter()
    heat = m(lm.model, x, t, **s.for_method(m, bounds))
    maps = normalize_maps(F.relu(heat.maps))
    seconds = (time.perf_counter() - began) / x.shape[0]
    inp = MetricInput(lm.model, x, maps, t, lm.preprocess, explainer(name, s, bounds), masks,
                      s.batch_size, s.seed)
    run = [METRIC_TABLE[k] for k in s.metrics
           if "masks" not in METRIC_TABLE[k].needs or masks is not None]  # else: not_run
    key = next((k for k, (seen, _) in scored.items() if seen.shape == maps.shape
                and torch.allclose(seen, maps, rtol=0, atol=SAME)), name)
    if key == name:  # maps-only metrics: once for equal maps
        shared = [k for k in run if "method" not in k.needs]
        say(f"{name}: {', '.join(k.name for k in shared)}")
        scored[key] = (maps, {k.name: k(inp, **s.for_metric(k)) for k in shared})
    scores = dict(scored[key][1])
    for k in run:
        if "method" in k.needs and name not in BASELINES:  # random maps: nothing to check
            say(f"{name}: {k.label}")
            scores[k.name] = k(inp, **s.for_metric(k))
    flat = F.interpolate(maps[:, None].float(), size=tuple(x.shape[-2:]), mode="bilinear",
                         align_corners=False).flatten(1)  # as the map lies on the image
    constant = int(((flat.amax(1) - flat.amin(1)) <= CONSTANT).sum())
    if constant:
        say(f"{name}: {constant} of {maps.shape[0]} maps are constant (nothing to show)")
    settings = {k: v for k, v in m.effective(s.for_method(m)).items()
                if not hasattr(v, "shape") and k not in ("low", "high")}
    order = [k for k in METRIC_TABLE if k in scores]
    return MethodResult(name, maps, seconds, {k: scores[k] for k in order}, constant,
                        heat.signed(), settings)
