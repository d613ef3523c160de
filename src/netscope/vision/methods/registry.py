"""Every attribution method, registered once: its name, what it needs, its settings with
their defaults, and one call, ``explain(name, model, x, targets=None, **settings)``.

`vision evaluate`, `vision explain`, `vision gradcam` / `saliency` and live mode read their
choices from here, so a new method is one function (``(model, x, targets=None, *,
<settings>) -> Heatmaps``) and one entry below. This module imports no PyTorch: the command
line lists the methods in ``--help`` without loading it; an implementation is imported when
it is first called.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import import_module
from typing import Any

from netscope.errors import NetscopeError
from netscope.vision.methods.relevance import ATTENTION, COMPOSITE_TABLE

BATCH = 16  # images per forward pass in perturbation methods (as core.batched.BATCH)


@dataclass(frozen=True)
class Setting:
    """One keyword a method takes: its default, what it does, and what values it takes.

    Declared once, read everywhere: the method checks values against it (Python callers
    get the same errors as the command line), and every command that offers the method
    derives its option (``--name``, its type, range, choices and help) from it. ``cast`` is
    int, float, bool or str; None keeps it off the command line (a Python object: a module,
    a rule table). ``off`` is the command-line value that stands for None ("0: all");
    ``many`` takes a comma-separated list (of ``choices``, or numbers); ``from_input``
    ("low" / "high") is filled by commands from the model's input range."""

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    cast: type | None = None
    lo: float | None = None
    hi: float | None = None
    above: bool = False  # lo itself is not allowed
    below: bool = False  # hi itself is not allowed
    off: Any = None
    many: bool = False
    from_input: str | None = None

    def but(self, default: Any) -> Setting:
        """The same setting with a method's own default."""
        return replace(self, default=default)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def on_command_line(self) -> bool:
        return (self.cast is not None or self.choices is not None) and self.from_input is None

    def check(self, value: Any, owner: str) -> None:
        """An error naming ``owner`` (the method) when ``value`` is not allowed; a tensor (a
        baseline, segments) is left to the method's own checks."""
        if hasattr(value, "shape") or (value is None and (self.default is None
                                                           or self.off is not None)):
            return
        if self.choices is not None:
            values = tuple(value) if self.many and isinstance(value, list | tuple) else \
                (value,)
            bad = [v for v in values if v not in self.choices]
            if not values:
                raise NetscopeError(f"{owner}: {self.name} needs at least one of "
                                    f"{', '.join(map(str, self.choices))}.")
            if bad:
                raise NetscopeError(f"{owner}: {self.name} must be "
                                    f"{'some' if self.many else 'one'} of "
                                    f"{', '.join(map(str, self.choices))}, got {value!r}.")
            return
        if self.cast in (int, float) and self.many:
            values = tuple(value) if isinstance(value, list | tuple) else (value,)
            if not values:
                raise NetscopeError(f"{owner}: {self.name} needs at least one value.")
            for v in values:
                self._check_number(v, owner)
        elif self.cast in (int, float):
            self._check_number(value, owner)
        elif self.cast is bool and not isinstance(value, bool):
            raise NetscopeError(f"{owner}: {self.name} must be True or False, got {value!r}.")

    def _check_number(self, value: Any, owner: str) -> None:
        whole = self.cast is int
        ok = isinstance(value, numbers.Integral if whole else numbers.Real) and \
            not isinstance(value, bool) and math.isfinite(value)
        low = self.lo is None or (value > self.lo if self.above else value >= self.lo) \
            if ok else False
        high = self.hi is None or (value < self.hi if self.below else value <= self.hi) \
            if ok else False
        if not (ok and low and high):
            noun = "a whole number" if whole else "a number"
            bounds = [f"{'>' if self.above else '>='} {self.lo:g}"] if self.lo is not None \
                else []
            bounds += [f"{'<' if self.below else '<='} {self.hi:g}"] if self.hi is not None \
                else []
            raise NetscopeError(f"{owner}: {self.name} must be {noun}"
                                f"{' ' + ' and '.join(bounds) if bounds else ''}, got "
                                f"{value!r}.")


LAYER = Setting("layer", None, "layer whose activations are used (default: the feature map "
                "the head pools, or a transformer's last block the score depends on)",
                cast=str)
NORMALIZE = Setting("normalize", "max", "divide each map by its maximum, or min-max scale it",
                    ("max", "minmax"))
BATCH_SIZE = Setting("batch_size", BATCH, "perturbed copies per forward pass", cast=int,
                     lo=1, hi=4096)
TOP_K = Setting("top_k", None, "only the k channels with the largest mean activation (0: "
                "all)", cast=int, lo=0, hi=10_000, off=0)
BASELINE = Setting("baseline", "zeros", "the reference image: zeros, a blurred copy, or the "
                   "image's mean colour", ("zeros", "blur", "mean"))
SEED = Setting("seed", 0, "seed of the noise", cast=int, lo=0, hi=2**32 - 1)
BASELINES = Setting("baselines", ("zeros", "blur", "mean"), "the baselines, comma-separated "
                    "(Python: or a tensor (K, C, H, W) of reference images)",
                    ("zeros", "blur", "mean"), many=True)
PP_EPS = Setting("eps", 0.0, "Grad-CAM++'s denominator term: 0 is the paper's formula, "
                 "1e-6 reproduces pytorch-grad-cam 1.5.7", cast=float, lo=0, hi=1)
STEPS = Setting("steps", 32, "path steps (trapezoid rule)", cast=int, lo=1, hi=10_000)
SEGMENTS = Setting("segments", "grid", "the features: cells of a grid or SLIC superpixels "
                   "(Python: or a label map (N, H, W) of one's own)", ("grid", "slic"))


CELLS = Setting("cells", 8, "grid cells per side, or the number of superpixels asked",
                cast=int, lo=1, hi=4096)


TUNNEL_KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")
TUNNEL = (  # Captum's NoiseTunnel over any method (methods.noise_tunnel)
    Setting("nt_samples", None, "noise tunnel: run the method on this many noisy copies and "
            "combine the results (0: off)", cast=int, lo=0, hi=10_000, off=0),
    Setting("nt_type", "smoothgrad", "noise tunnel: combine by the mean (smoothgrad), the "
            "mean square (smoothgrad_sq) or the variance (vargrad)", TUNNEL_KINDS),
    Setting("nt_noise", 0.05, "noise tunnel: noise SD as a fraction of the input's range",
            cast=float, lo=0, hi=10, above=True, below=True),
    Setting("nt_seed", 0, "noise tunnel: seed of the noise", cast=int, lo=0, hi=2**32 - 1))


@dataclass(frozen=True)
class Method:
    """A registered attribution method.

    ``needs`` says what the model must offer (gradients, a linear head, readable attention,
    ReLU modules); ``resolution`` where the map lives (a layer's grid, or the input's
    pixels); ``command`` which single-method command lists it (``gradcam`` or
    ``saliency``); ``in_all`` whether `vision evaluate`'s 'all' includes it; ``live``
    whether live mode's method cycle does; ``dataset`` whether `vision explain` offers it;
    ``signed`` whether its attributions are evidence for and against the target, drawn
    with their sign (LRP's relevance, the segment methods' values);
    ``tunnel`` whether it takes the noise tunnel's settings (``TUNNEL``, added to its
    own)."""

    name: str
    label: str
    summary: str
    function: str  # "module:function", imported on first use
    settings: tuple[Setting, ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()  # keywords always passed (a CAM variant)
    needs: tuple[str, ...] = ("gradients",)
    class_specific: bool = True
    resolution: str = "layer"
    command: str | None = "gradcam"
    in_all: bool = True
    live: bool = False
    dataset: bool = True
    signed: bool = False
    tunnel: bool = True
    _impl: list = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.tunnel:
            object.__setattr__(self, "settings", (*self.settings, *TUNNEL))

    def defaults(self) -> dict[str, Any]:
        return {s.name: s.default for s in self.settings}

    def effective(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every setting the method runs with (its defaults, and ``given``), for records;
        the noise tunnel's only when it is on."""
        out = {**self.defaults(), **self.accepted(given)}
        if not out.get("nt_samples"):
            for s in TUNNEL:
                out.pop(s.name, None)
        return out

    def implementation(self) -> Callable[..., Any]:
        if not self._impl:
            module, _, name = self.function.partition(":")
            self._impl.append(getattr(import_module(module), name))
        return self._impl[0]

    def from_input(self, bounds: tuple[Any, Any] | None) -> dict[str, Any]:
        """The settings filled from the model's input range (LRP's z-box bounds)."""
        if bounds is None:
            return {}
        return {s.name: bounds[0] if s.from_input == "low" else bounds[1]
                for s in self.settings if s.from_input}

    def accepted(self, candidates: dict[str, Any]) -> dict[str, Any]:
        """The entries of ``candidates`` that are settings of this method."""
        names = {s.name for s in self.settings}
        return {k: v for k, v in candidates.items() if k in names}

    def check(self, settings: dict[str, Any]) -> None:
        """An error for a keyword this method does not take, or a value it does not allow."""
        unknown = sorted(set(settings) - {s.name for s in self.settings})
        if unknown:
            takes = ", ".join(s.name for s in self.settings) or "no settings"
            raise NetscopeError(f"{self.name} has no setting {unknown[0]!r}; it takes {takes}.")
        for s in self.settings:
            if s.name in settings:
                s.check(settings[s.name], self.name)

    def __call__(self, model, x, targets=None, **settings):
        """The maps; a setting not given takes the registry's default (which may differ
        from the function's: SmoothGrad is saliency with 16 samples)."""
        self.check(settings)
        settings = {**self.defaults(), **settings}
        for s in self.settings:
            if s.name in settings:
                if s.off is not None and not hasattr(settings[s.name], "shape") and \
                        settings[s.name] == s.off:
                    settings[s.name] = None  # "0: all"
        from torch import enable_grad  # loaded with the method: a caller's no_grad()
        # (Captum's metrics run explanation functions under one) must not break gradients

        tunnel = {s.name[3:]: settings.pop(s.name) for s in TUNNEL if s.name in settings}
        with enable_grad():
            if tunnel.get("samples"):
                from netscope.vision.methods.noise_tunnel import noise_tunnel

                heat = noise_tunnel(model, x, targets, method=self.implementation(),
                                    kind=tunnel.pop("type"), **tunnel, **dict(self.fixed),
                                    **settings)
            else:
                heat = self.implementation()(model, x, targets, **dict(self.fixed),
                                             **settings)
        heat.method = self.name  # the registered name (a variant's, a test's own method)
        heat.signed_evidence = heat.signed_evidence or self.signed
        return heat


CAM_SETTINGS = (LAYER, NORMALIZE)
_M = "netscope.vision.methods."


def _cam_variant(name: str, label: str, summary: str, *extra: Setting) -> Method:
    return Method(name, label, summary, _M + "grad_cam_family:grad_cam",
                  (*CAM_SETTINGS, *extra), fixed=(("variant", name),), live=True)


METHODS: dict[str, Method] = {m.name: m for m in (
    _cam_variant("gradcam", "Grad-CAM", "channel weights = the spatial mean of the gradient"),
    _cam_variant("gradcam++", "Grad-CAM++", "positive gradients weighted by Grad-CAM++'s "
                 "closed-form coefficients",
                 PP_EPS),
    Method("smoothgradcam++", "Smooth Grad-CAM++", "Grad-CAM++ with its derivatives "
           "averaged over noisy copies of the image (Omeiza et al. 2019)",
           _M + "grad_cam_family:smooth_gradcampp",
           (*CAM_SETTINGS, Setting("samples", 4, "noisy copies", cast=int, lo=1, hi=10_000),
            Setting("noise", 0.05, "noise SD as a fraction of the input's range", cast=float,
                    lo=0, hi=10), SEED,
            PP_EPS), live=True),
    _cam_variant("xgradcam", "XGrad-CAM", "the activation-weighted mean of the gradient"),
    _cam_variant("layercam", "LayerCAM", "each position weighted by its positive gradient"),
    _cam_variant("hirescam", "HiResCAM", "each position weighted by its gradient"),
    _cam_variant("gradcam-elementwise", "element-wise Grad-CAM", "each channel's positive "
                 "gradient x activation at each position, summed"),
    _cam_variant("eigengradcam", "Eigen-Grad-CAM", "the first principal direction of the "
                 "gradient x activation products"),
    Method("shapleycam", "Shapley-CAM", "Grad-CAM's weights with the second-order term: "
           "mean of (gradient - Hessian x activations / 2) (Cai et al. 2025)",
           _M + "shapley_cam:shapley_cam",
           (LAYER, Setting("score", "rest", "the score explained: ReST (logit + log "
                           "probability, the paper's) or the logit", ("rest", "logit")),
            NORMALIZE), live=True),
    Method("finercam", "Finer-CAM", "Grad-CAM of the target against the classes it is "
           "nearly confused with (Zhang et al. 2025)", _M + "finer_cam:finer_cam",
           (LAYER, Setting("alpha", 1.0, "how much of the neighbours' logits is subtracted "
                           "(0: Grad-CAM)", cast=float, lo=0, hi=1e6),
            Setting("comparisons", 3, "how many nearest classes the target is compared with",
                    cast=int, lo=1, hi=100_000), NORMALIZE)),
    Method("eigencam", "Eigen-CAM", "the activations' first principal direction "
           "(class-agnostic, no gradients)", _M + "eigen:eigen_cam",
           (*CAM_SETTINGS, Setting("centre", False, "centre the activations first (as "
                                   "pytorch-grad-cam); default uncentred", cast=bool)),
           needs=(), class_specific=False, live=True),
    Method("kpcacam", "KPCA-CAM", "the activations' first kernel principal component "
           "(class-agnostic, no gradients)", _M + "eigen:kpca_cam",
           (*CAM_SETTINGS, Setting("kernel", "sigmoid", "kernel PCA's kernel",
                                   ("sigmoid", "rbf", "poly", "cosine", "linear")),
            Setting("kernel_gamma", None, "the kernel's coefficient (default: 1 / channels)",
                    cast=float, lo=0, hi=1e6, above=True)),
           needs=(), class_specific=False),
    Method("cam", "CAM", "class weights of a global-average-pool + linear head",
           _M + "class_activation:cam",
           (LAYER, Setting("fc", None, "the linear head (default: the last nn.Linear)"),
            NORMALIZE),
           needs=("linear head",)),
    Method("scorecam", "Score-CAM", "each channel weighted by the target's probability on "
           "the image masked by it (a forward pass per channel)",
           _M + "forward_cams:score_cam", (*CAM_SETTINGS, TOP_K, BATCH_SIZE), needs=()),
    Method("sscam", "SS-CAM", "Score-CAM's weights averaged over noisy copies of each "
           "channel's map (Wang et al. 2020)", _M + "forward_cams:ss_cam",
           (*CAM_SETTINGS, TOP_K, Setting("samples", 35, "noisy copies of each map", cast=int,
                                          lo=1, hi=10_000),
            Setting("mask_noise", 2.0, "noise SD on the maps (scaled to [0, 1])", cast=float,
                    lo=0, hi=1e6), SEED, BATCH_SIZE), needs=(), in_all=False),
    Method("iscam", "IS-CAM", "Score-CAM's weights integrated over scaled copies of each "
           "channel's map (Naidu et al. 2020)", _M + "forward_cams:is_cam",
           (*CAM_SETTINGS, TOP_K, Setting("samples", 10, "integration steps", cast=int, lo=1,
                                          hi=10_000), BATCH_SIZE), needs=(), in_all=False),
    Method("ablationcam", "Ablation-CAM", "each channel weighted by the target's drop when "
           "it is zeroed (a forward pass per channel)",
           _M + "forward_cams:ablation_cam", (*CAM_SETTINGS, TOP_K, BATCH_SIZE), needs=()),
    Method("saliency", "saliency", "|d score / d pixel|, the maximum over colours",
           _M + "gradients:saliency", resolution="input", command="saliency"),
    Method("smoothgrad", "SmoothGrad", "saliency averaged over noisy copies (the noise "
           "tunnel over saliency)",
           _M + "gradients:saliency",
           (Setting("samples", 16, "noisy copies", cast=int, lo=1, hi=10_000),
            Setting("noise", 0.05, "noise SD as a fraction of the input's range",
                    cast=float, lo=0, hi=10), SEED),
           resolution="input", command="saliency", tunnel=False),
    Method("input-x-gradient", "Input x Gradient", "each pixel times the gradient of the "
           "target score (Shrikumar et al. 2016)", _M + "input_gradient:input_x_gradient",
           (NORMALIZE,), resolution="input", command="saliency"),
    Method("deconvolution", "Deconvolution", "the gradient passed back through ReLUs as its "
           "positive part only (Zeiler & Fergus 2014)", _M + "input_gradient:deconvolution",
           (NORMALIZE,), needs=("gradients", "ReLU modules"), resolution="input",
           command="saliency"),
    Method("deeplift", "DeepLIFT", "(x - baseline) times the gradient with each activation's "
           "slope replaced by its rescale multiplier (Shrikumar et al. 2017)",
           _M + "deeplift:deeplift", (BASELINE, NORMALIZE),
           needs=("gradients", "activation modules"), resolution="input",
           command="saliency"),
    Method("deeplift-shap", "DeepLIFT-SHAP", "DeepLIFT against several baselines, averaged "
           "(Lundberg & Lee 2017)", _M + "deeplift:deeplift_shap",
           (BASELINES, NORMALIZE),
           needs=("gradients", "activation modules"), resolution="input",
           command="saliency"),
    Method("gradient-shap", "GradientSHAP", "(x - baseline) times the gradient at a random "
           "point between them, for random baselines, averaged: Integrated Gradients in "
           "expectation (Lundberg & Lee 2017)", _M + "gradient_shap:gradient_shap",
           (BASELINES, Setting("samples", 16, "random (baseline, point) draws per image",
                               cast=int, lo=1, hi=10_000),
            Setting("noise", 0.0, "noise SD added to the image, as a fraction of its range "
                    "(0: none)", cast=float, lo=0, hi=10), SEED, BATCH_SIZE, NORMALIZE),
           resolution="input", command="saliency", in_all=False),
    Method("integrated-gradients", "Integrated Gradients", "(x - baseline) times the mean "
           "gradient on the straight path from the baseline", _M
           + "path_integral:integrated_gradients",
           (BASELINE, STEPS, BATCH_SIZE),
           resolution="input", command="saliency"),
    Method("layer-conductance", "layer conductance", "Integrated Gradients split over a "
           "layer's units: dF/du times u's change along the path, summed (Dhamdhere et al. "
           "2018)", _M + "conductance:layer_conductance",
           (LAYER, BASELINE, STEPS, BATCH_SIZE, NORMALIZE), in_all=False),
    Method("neuron-conductance", "neuron conductance", "each pixel's share of the flow "
           "through one channel of a layer, along the Integrated Gradients path",
           _M + "conductance:neuron_conductance",
           (LAYER, Setting("unit", 0, "the layer's channel whose flow is split over the input",
                           cast=int, lo=0, hi=1_000_000),
            Setting("position", None, "one position (i, j) of the channel (Python; default: "
                    "all of them)"),
            BASELINE, STEPS, BATCH_SIZE, NORMALIZE),
           resolution="input", command="saliency", in_all=False),
    Method("fullgrad", "FullGrad", "x times the input gradient plus, at every convolution "
           "and batch norm, the bias times the gradient: together they make up the score "
           "(Srinivas & Fleuret 2019)", _M + "full_gradient:full_grad", (NORMALIZE,),
           needs=("gradients", "convolution or batch-norm biases"), resolution="input",
           command="saliency"),
    Method("occlusion", "Occlusion", "the target's drop when a sliding window is replaced by "
           "the baseline", _M + "occlusion_map:occlusion",
           (Setting("window", 32, "window side, pixels", cast=int, lo=1, hi=4096),
            Setting("stride", 16, "window step, pixels", cast=int, lo=1, hi=4096), BASELINE,
            BATCH_SIZE,
            Setting("scale", "logit", "read the target as a logit or a softmax probability",
                    ("logit", "prob")), NORMALIZE),
           needs=(), resolution="input", command="saliency"),
    Method("feature-ablation", "feature ablation", "each segment (grid cell or SLIC "
           "superpixel) replaced by the baseline in turn; its pixels get the target's drop",
           _M + "feature_ablation:feature_ablation",
           (SEGMENTS, CELLS, BASELINE, BATCH_SIZE, NORMALIZE),
           needs=(), resolution="input", command="saliency", signed=True),
    Method("shapley-sampling", "Shapley value sampling", "each segment's mean change of the "
           "target when it is put back on the baseline, over random orders of the segments "
           "(Castro et al. 2009)", _M + "shapley_sampling:shapley_sampling",
           (SEGMENTS, CELLS.but(4), BASELINE,
            Setting("samples", 25, "random orders of the segments", cast=int, lo=1,
                    hi=10_000), SEED, BATCH_SIZE, NORMALIZE),
           needs=(), resolution="input", command="saliency", in_all=False,
           signed=True),
    Method("kernel-shap", "KernelSHAP", "a linear model of the target on which segments are "
           "kept, fitted on samples weighted by the Shapley kernel (Lundberg & Lee 2017)",
           _M + "surrogate:kernel_shap",
           (SEGMENTS.but("slic"), CELLS.but(25), BASELINE,
            Setting("samples", 600, "perturbed images (the full and the empty one first, "
                    "then coalitions and their complements)",
                    cast=int, lo=1, hi=10_000), SEED, BATCH_SIZE, NORMALIZE),
           needs=(), resolution="input", command="saliency", in_all=False,
           signed=True),
    Method("lime", "LIME", "a sparse linear model of the target on which segments are kept, "
           "fitted on samples weighted by their closeness to the image (Ribeiro et al. 2016)",
           _M + "surrogate:lime",
           (SEGMENTS.but("slic"), CELLS.but(50), BASELINE,
            Setting("samples", 1000, "perturbed images (the lime package's default)",
                    cast=int, lo=1, hi=10_000),
            Setting("kernel_width", 1.0, "width of the kernel on the cosine distance",
                    cast=float, lo=0, hi=1e6, above=True),
            Setting("lasso_alpha", 0.01, "the Lasso's L1 weight", cast=float, lo=0, hi=1e6),
            SEED, BATCH_SIZE, NORMALIZE),
           needs=(), resolution="input", command="saliency", in_all=False,
           signed=True),
    Method("lrp", "LRP", "layer-wise relevance propagation: the target score handed down "
           "layer by layer by rules (a modified backward pass)",
           _M + "relevance.propagate:lrp",
           (Setting("composite", "epsilon-plus", "which rule each layer gets (Zennit's "
                    "composites)", COMPOSITE_TABLE),  # live: a composite added is offered
            Setting("epsilon", 1e-6, "the epsilon rule's stabilizer (dense layers)",
                    cast=float, lo=0, hi=1e6, above=True),
            Setting("gamma", 0.25, "the gamma rule's weight on positive parameters",
                    cast=float, lo=0, hi=1e6),
            Setting("stabilizer", 1e-6, "the other rules' stabilizer", cast=float, lo=0,
                    hi=1e6, above=True),
            Setting("attention", "ah", "transformers: 'ah' holds the attention weights "
                    "constant (Ali et al. 2022); 'attnlrp' passes relevance through queries "
                    "and keys too (AttnLRP)", choices=ATTENTION),
            Setting("low", None, "z-box: each input channel's lowest value (default: this "
                    "batch's; commands: the model's input range)", from_input="low"),
            Setting("high", None, "z-box: each input channel's highest value",
                    from_input="high"),
            Setting("rules", None, "a rule per layer name, over the composite's"),
            NORMALIZE,
            Setting("through", None, "concept relevance: {layer: [channels]} lets only those "
                    "units pass relevance on"),
            Setting("units", None, "a layer whose per-unit relevance is reported")),
           needs=("gradients", "a model torch.fx can trace"), resolution="input",
           command="saliency", live=True, signed=True),
    Method("guided", "guided Grad-CAM", "guided backpropagation times the upsampled Grad-CAM "
           "map", _M + "guided:guided_grad_cam", CAM_SETTINGS,
           needs=("gradients", "ReLU modules"), resolution="input", dataset=False),
    Method("rollout", "attention rollout", "attention multiplied through the layers of a "
           "vision transformer (class-agnostic)", _M + "rollout:attention_rollout",
           (Setting("fusion", "mean", "how the heads of a layer are combined",
                    ("mean", "max", "min")),
            Setting("discard", 0.0, "share of each row's weakest attention weights dropped",
                    cast=float, lo=0, hi=0.99),
            NORMALIZE),
           needs=("readable attention",), class_specific=False, in_all=False),
    Method("legrad", "LeGrad", "each block's logit-lens class score differentiated with "
           "respect to its attention, positive parts averaged (Bousselham et al. 2024)",
           _M + "legrad:legrad",
           (Setting("blocks", None, "the last k blocks (0: all)", cast=int, lo=0, hi=10_000,
                    off=0),
            Setting("score_projection_fn", None, "tokens -> logits, for a model whose head is "
                    "not found (Python)"), NORMALIZE),
           needs=("gradients", "readable attention"), in_all=False),
    Method("random", "random map", "uniform noise: the floor any method must clear",
           _M + "random_floor:random_map",
           (SEED, Setting("size", 14, "map side", cast=int, lo=1, hi=4096)),
           needs=(), class_specific=False, command=None, dataset=False, tunnel=False),
)}


def method(name: str) -> Method:
    """The registered method ``name``, or an error listing every name."""
    try:
        return METHODS[name]
    except KeyError:
        raise NetscopeError(f"unknown method {name!r}; choose from "
                            f"{', '.join(METHODS)}.") from None


def names(where: str | None = None) -> tuple[str, ...]:
    """Method names in registry order: all, or those of a use: 'gradcam' / 'saliency' (the
    single-method commands), 'all' (evaluate's default), 'live', 'dataset'."""
    keep: dict[str | None, Callable[[Method], bool]] = {
        None: lambda m: True, "all": lambda m: m.in_all, "live": lambda m: m.live,
        "dataset": lambda m: m.dataset, "gradcam": lambda m: m.command == "gradcam",
        "saliency": lambda m: m.command == "saliency"}
    if where not in keep:
        raise NetscopeError(f"no method list {where!r}; choose from "
                            f"{', '.join(str(k) for k in keep if k)}.")
    return tuple(n for n, m in METHODS.items() if keep[where](m))


def describe(chosen: Iterable[str]) -> str:
    """'name (label: summary)' for --help texts."""
    return "; ".join(f"{n}: {METHODS[n].label}, {METHODS[n].summary}" for n in chosen)


def explain(name: str, model, x, targets=None, **settings):
    """Maps of method ``name`` for a batch (a ``Heatmaps``), one target per image
    (None: each image's top-1 class); ``settings`` are the method's keywords."""
    return method(name)(model, x, targets, **settings)
