"""What each unit looks like: its feature visualization by the batched gradient ascent of
``features.ascent`` (many units per batch), and a diversity set (several pictures of the
same unit pushed apart by the Gram-cosine term), with the Fourier parametrization or the
phase-only one that keeps the atlas's own images' amplitude spectrum."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from netscope.errors import NetscopeError
from netscope.timing import time_left
from netscope.vision.features.ascent import AscentConfig, visualize_filters
from netscope.vision.features.presets import PRESETS
from netscope.vision.models.zoo import LoadedModel
from netscope.vision.units.atlas_run import SPECTRUM_SIZE

PICTURES_PER_BATCH = 32


def picture_config(param: str = "fourier", steps: int | None = None, seed: int = 0) -> AscentConfig:
    preset = dict(PRESETS.get(param, PRESETS["fourier"]))
    if steps is not None:
        preset["steps"] = steps
    return AscentConfig(size=SPECTRUM_SIZE, param=param, seed=seed, **preset)


def unit_pictures(lm: LoadedModel, layer: str, units: int, cfg: AscentConfig,
                  diverse: int = 0, diversity: float = 0.5, spectrum: np.ndarray | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """``main``: (units, 3, S, S) one picture per unit; ``diverse``: (units, N, 3, S, S)
    when ``diverse`` = N >= 2. Float16 in [0, 1]."""
    if diverse == 1 or diverse < 0:
        raise NetscopeError(f"a diversity set needs at least 2 pictures (or 0 for none), "
                            f"got {diverse}.")
    say = progress or (lambda message: None)
    out = {"main": _run(lm, layer, units, cfg, 1, 0.0, spectrum, say, "pictures")}
    if diverse:
        out["diverse"] = _run(lm, layer, units, cfg, diverse, diversity, spectrum, say,
                              "diversity sets").reshape(units, diverse, 3, cfg.size, cfg.size)
    return out


def _run(lm, layer, units, cfg, copies, diversity, spectrum, say, what) -> np.ndarray:
    step = max(1, PICTURES_PER_BATCH // copies)
    parts, begun = [], time.perf_counter()
    for start in range(0, units, step):
        channels = list(range(start, min(units, start + step)))
        result = visualize_filters(lm.model, layer, channels, lm.preprocess, cfg,
                                   copies=copies, diversity=diversity, spectrum=spectrum)
        parts.append(result.images.detach().float().cpu().numpy().astype(np.float16))
        say(f"atlas: {what} of {layer}, {channels[-1] + 1}/{units} units"
            f"{time_left(time.perf_counter() - begun, channels[-1] + 1, units)}")
    return np.concatenate(parts)
