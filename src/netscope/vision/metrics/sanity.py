"""Sanity checks for saliency maps (Adebayo et al. 2018): cascading model parameter
randomization. The layers of a copy of the model are re-initialized from the head down, one
group at a time, and the map is recomputed after each group (for the same target class).
A map that explains the model must change once the weights it depends on are destroyed; a
method whose maps stay similar (an edge detector in disguise) fails.

Similarity between the trained model's map and each randomized one: Spearman rank
correlation and SSIM, on maps brought to 56 x 56 and scaled to [0, 1]. A method FAILS when
the mean Spearman correlation with every layer randomized is still >= ``FAIL_AT`` (0.5).
The user's model is never touched: the randomization works on a deep copy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.heatmaps import upsample
from netscope.vision.core.host import host
from netscope.vision.core.targets import TargetLike
from netscope.vision.metrics.registry import FAIL_AT
from netscope.vision.metrics.scored import MetricInput, Scores

COMPARE_SIZE = 56
# (model, x, targets) -> maps (N, h, w): how a metric asks for maps, never by method name
Explain = Callable[[nn.Module, torch.Tensor, TargetLike], torch.Tensor]


def parameter_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """Modules holding parameters, grouped into blocks ('_blocks.15', 'layer4.1', '_fc'),
    in reverse order of definition: from the head down."""
    groups: dict[str, list[nn.Module]] = {}
    for name, module in model.named_modules():
        if name and any(True for _ in module.parameters(recurse=False)):
            m = re.match(r"^(.*?\.\d+)(\.|$)", name)
            groups.setdefault(m.group(1) if m else name.split(".")[0], []).append(module)
    if not groups:
        raise NetscopeError("the model has no parameters to randomize.")
    return list(reversed(groups.items()))


def reinitialize(modules: Sequence[nn.Module], seed: int) -> None:
    """Fresh random weights: each module's own initializer, else N(0, 0.02)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for m in modules:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            else:
                for p in m.parameters(recurse=False):
                    p.normal_(0.0, 0.02)


def _comparable(maps: torch.Tensor) -> np.ndarray:
    return host(upsample(maps.double(), (COMPARE_SIZE, COMPARE_SIZE), "minmax"))


def similarity(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per image: Spearman rank correlation and SSIM of two batches of maps."""
    ca, cb = _comparable(a.detach().cpu()), _comparable(b.detach().cpu())
    rho, ssim = [], []
    for u, v in zip(ca, cb, strict=True):
        constant = np.ptp(u) == 0 or np.ptp(v) == 0
        rho.append(0.0 if constant else float(spearmanr(u.ravel(), v.ravel())[0]))
        ssim.append(float(structural_similarity(u, v, data_range=1.0)))
    return np.array(rho), np.array(ssim)


@dataclass
class SanityCheck:
    stages: list[str]  # the last group randomized at each checkpoint ("_fc", ...)
    depth: list[int]  # how many groups were randomized at each checkpoint
    groups: int  # groups in the model
    spearman: np.ndarray  # (checkpoints, N)
    ssim: np.ndarray  # (checkpoints, N)

    @property
    def final_spearman(self) -> float:
        return float(self.spearman[-1].mean())

    @property
    def passed(self) -> bool:
        return self.final_spearman < FAIL_AT


def cascading_randomization(model: nn.Module, x: torch.Tensor, explain: Explain,
                            targets: TargetLike, checkpoints: int | None = None,
                            seed: int = 0) -> SanityCheck:
    """Randomize a copy's parameter groups from the head down and compare the maps.
    ``checkpoints``: how many evenly spaced depths to compare (None: after every group);
    the last checkpoint always has every group randomized."""
    groups = parameter_groups(model)
    depths = list(range(1, len(groups) + 1))
    if checkpoints is not None:
        if checkpoints < 1:
            raise NetscopeError(f"checkpoints must be >= 1, got {checkpoints}.")
        depths = sorted({max(1, round(len(groups) * (i + 1) / checkpoints))
                         for i in range(checkpoints)})
    trained = explain(model, x, targets)
    twin = copy.deepcopy(model)
    twin_groups = parameter_groups(twin)
    rhos, ssims, names, done = [], [], [], 0
    for depth in depths:
        for i in range(done, depth):
            reinitialize(twin_groups[i][1], seed + i)
        done = depth
        rho, ssim = similarity(trained, explain(twin, x, targets))
        rhos.append(rho)
        ssims.append(ssim)
        names.append(groups[depth - 1][0])
    return SanityCheck(names, depths, len(groups), np.array(rhos), np.array(ssims))


def sanity_scores(inp: MetricInput, *, sanity_checkpoints: int) -> Scores:
    """The registry's sanity check: the final Spearman correlation per image, the verdict,
    and the correlations at every checkpoint for the report."""
    check = cascading_randomization(inp.model, inp.x, inp.explain, inp.targets,
                                    sanity_checkpoints, inp.seed)
    return Scores({"sanity_spearman": torch.from_numpy(check.spearman[-1].copy())},
                  passed=check.passed,
                  record={"stages": check.stages, "depth": check.depth, "groups": check.groups,
                          "spearman": check.spearman.tolist(), "ssim": check.ssim.tolist()})
