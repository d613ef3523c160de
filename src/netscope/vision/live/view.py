"""What live mode draws on each frame, and the keys that change it.

Heatmap mode: Grad-CAM (or another method fast enough for every frame, key ``c``: the
registry's live methods) of the top-1 class over the whole
frame (the frame is resized to the
model's input square, so the map lines up with the frame exactly), with the class name, its
probability and the frame rate. Activations mode: a grid of the current layer's feature maps.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.vision.core.batched import class_scores
from netscope.vision.core.heatmaps import normalized_array
from netscope.vision.core.host import host
from netscope.vision.core.layers import find_layer
from netscope.vision.features.activations import activations, conv_stages
from netscope.vision.live.opencv import opencv
from netscope.vision.methods.registry import METHODS, names
from netscope.vision.models.classes import class_label
from netscope.vision.models.zoo import LoadedModel

MODES = ("heatmap", "activations")
CAM_METHODS = names("live")  # fast enough for every frame
KEYS = {"n": "next layer", "p": "previous layer", "m": "switch mode", "c": "next CAM method",
        " ": "pause", "s": "snapshot", "q": "quit"}


class LiveView:
    def __init__(self, lm: LoadedModel, mode: str = "heatmap", layer: str | None = None,
                 snapshot_dir: str | Path = "netscope-results/live", max_channels: int = 36,
                 cam_layer: str | None = None, cam_method: str = "gradcam",
                 cam_settings: dict | None = None) -> None:
        """``cam_settings``: method settings by name, each given to every method of the
        cycle that takes it (``cam_layer`` is its ``layer``)."""
        if mode not in MODES:
            raise NetscopeError(f"mode must be one of {MODES}, got {mode!r}.")
        if cam_method not in CAM_METHODS:
            raise NetscopeError(f"CAM method must be one of {', '.join(CAM_METHODS)}, got "
                                f"{cam_method!r}.")
        self.cam_method = cam_method
        self.lm, self.mode, self.max_channels = lm, mode, max_channels
        self.layers = conv_stages(lm.model)
        if layer is not None:
            find_layer(lm.model, layer)  # clear error with close matches
            if layer not in self.layers:
                self.layers.append(layer)
        self.layer_index = self.layers.index(layer) if layer else len(self.layers) // 2
        self.cam_settings = {**(cam_settings or {}),
                             **({"layer": cam_layer} if cam_layer is not None else {})}
        takes = {s.name for n in CAM_METHODS for s in METHODS[n].settings}
        unknown = [k for k in self.cam_settings if k not in takes]
        if unknown:
            raise NetscopeError(f"no live method has a setting {unknown[0]!r}; they take "
                                f"{', '.join(sorted(takes))}.")
        for n in CAM_METHODS:
            METHODS[n].check(METHODS[n].accepted(self.cam_settings))
        self.bounds = lm.preprocess.bounds()
        self.paused = False
        self.snapshot_dir = Path(snapshot_dir)
        self.snapshots: list[Path] = []
        self._last: np.ndarray | None = None
        self._times: list[float] = []
        self._cv2 = opencv()

    @property
    def layer(self) -> str:
        return self.layers[self.layer_index]

    def handle_key(self, key: str) -> bool:
        """Apply a key; False means quit."""
        if key == "q":
            return False
        if key == "n":
            self.layer_index = (self.layer_index + 1) % len(self.layers)
        elif key == "p":
            self.layer_index = (self.layer_index - 1) % len(self.layers)
        elif key == "m":
            self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        elif key == "c":
            self.cam_method = CAM_METHODS[(CAM_METHODS.index(self.cam_method) + 1)
                                          % len(CAM_METHODS)]
        elif key == " ":
            self.paused = not self.paused
        elif key == "s" and self._last is not None:
            from netscope.vision.models.images import save_png

            path = self.snapshot_dir / f"snapshot_{len(self.snapshots) + 1:03d}_{self.mode}.png"
            self.snapshots.append(save_png(self._last.astype(np.float32) / 255, path))
        return True

    def _input(self, frame: np.ndarray) -> torch.Tensor:
        size = self.lm.preprocess.size
        small = self._cv2.resize(frame, (size, size), interpolation=self._cv2.INTER_AREA)
        x = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255
        pre = self.lm.preprocess
        return pre.normalize(x.to(pre.device)).to(getattr(torch, pre.dtype))

    def render(self, frame: np.ndarray) -> np.ndarray:
        """The output picture (RGB uint8) for one frame; a paused view repeats its last one."""
        if self.paused and self._last is not None:
            return self._last
        x = self._input(frame)
        out = self._heatmap(frame, x) if self.mode == "heatmap" else self._activations(frame, x)
        now = time.perf_counter()
        self._times = [t for t in self._times if now - t < 2.0] + [now]
        fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) \
            if len(self._times) > 1 else 0.0
        self._text(out, f"{fps:4.1f} fps", (10, out.shape[0] - 12))
        self._last = out
        return out

    def _heatmap(self, frame: np.ndarray, x: torch.Tensor) -> np.ndarray:
        cv2 = self._cv2
        method = METHODS[self.cam_method]
        heat = method(self.lm.model, x, **method.accepted(self.cam_settings),
                      **method.from_input(self.bounds))
        h, w = frame.shape[:2]
        signed = heat.method == "lrp"  # relevance has a sign: evidence for and against
        values = heat.attributions[0].sum(0) if signed else heat.maps[0]
        m = cv2.resize(host(values).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        colour = diverging(m) if signed else \
            cv2.applyColorMap((m * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
        out = cv2.addWeighted(frame, 0.55, colour, 0.45, 0)
        t = int(heat.classes[0])
        p = float(class_scores(heat.logits[:1].float(), heat.classes[:1], "prob")[0])
        name = class_label(self.lm.class_names, t)
        self._text(out, f"{name}  {p:.0%}  [{self.cam_method}]", (10, 30))
        return out

    def _activations(self, frame: np.ndarray, x: torch.Tensor) -> np.ndarray:
        cv2 = self._cv2
        act = host(activations(self.lm.model, x, [self.layer])[self.layer][0])
        if act.ndim != 3:
            raise NetscopeError(f"layer {self.layer} has no feature maps (shape {act.shape}).")
        grid = tile(act[: self.max_channels])
        h, w = frame.shape[:2]
        colour = cv2.applyColorMap((grid * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1]
        out = np.ascontiguousarray(cv2.resize(colour, (w, h), interpolation=cv2.INTER_NEAREST))
        self._text(out, f"{self.layer} {tuple(act.shape)}", (10, 30))
        return out

    def _text(self, img: np.ndarray, text: str, org: tuple[int, int]) -> None:
        cv2 = self._cv2
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2,
                    cv2.LINE_AA)


def diverging(values: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Signed values -> RGB uint8: red for positive, blue for negative, white for zero,
    both sides scaled by the same percentile of |value| (render.heatmap.relevance_image's
    colours, made with NumPy alone for the frame loop)."""
    top = float(np.percentile(np.abs(values), percentile))
    v = np.clip(values / top, -1, 1) if top > 0 else np.zeros_like(values)
    rgb = np.ones((*v.shape, 3), np.float32)
    rgb[..., 1] -= np.abs(v)
    rgb[..., 2] -= np.clip(v, 0, 1)
    rgb[..., 0] -= np.clip(-v, 0, 1)
    return (rgb * 255).astype(np.uint8)


def tile(maps: np.ndarray, gap: int = 2) -> np.ndarray:
    """(C, h, w) -> one (rows*h, cols*w) image in [0, 1], each map scaled on its own."""
    c, h, w = maps.shape
    cols = math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    grid = np.zeros((rows * (h + gap) - gap, cols * (w + gap) - gap), np.float32)
    scaled = normalized_array(maps)
    for i in range(c):
        r, q = divmod(i, cols)
        grid[r * (h + gap):r * (h + gap) + h, q * (w + gap):q * (w + gap) + w] = scaled[i]
    return grid
