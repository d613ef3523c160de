"""What a map explains: one score per image, read from whatever the model returns.

A target is given as
- a class (index, name resolved earlier, one per image, or None for each image's top-1),
- ``ScoreFn(fn)`` or any callable: ``fn(output)`` returns one score per image,
- ``SegmentationMask(class_index, mask)``: the sum of a class's logits inside a mask, for a
  segmentation output (N, classes, H, W),
- ``DetectorBox(box, class_index)``: the score of the detection of that class that overlaps
  ``box`` most (IoU at least ``iou``), for a torchvision-style detector (a list of dicts
  with boxes, labels and scores per image),
- ``Regression(index)``: an output value itself, for (N,) or (N, K) outputs.
Every kind takes ``key``: the entry of a dict (or position in a tuple) that the model
returns, e.g. ``key="out"`` for torchvision's segmentation models.

``resolve`` fixes the per-image choices once on the clean output (the top-1 class) and
returns ``Resolved``: rows that can be repeated and sliced like the batches of perturbed
copies that Score-CAM, Occlusion and the faithfulness metrics score, each row scoring the
image it came from. Class targets score a softmax probability or a logit (``scale``); other
targets always score their own value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from weakref import WeakKeyDictionary

import torch
from torch.utils.hooks import RemovableHandle

from netscope.errors import NetscopeError

Key = str | int | None
SCALES = ("prob", "logit")  # how a class score is read


def select_output(output: Any, key: Key) -> Any:
    """The part of a model's output that a target reads: ``output[key]`` for a dict (or a
    tuple/list position), the output itself when no key is named."""
    if key is None:
        if isinstance(output, dict):
            if "logits" in output:  # a Hugging Face ModelOutput, with or without attentions
                return output["logits"]
            if len(output) == 1:
                return next(iter(output.values()))
            raise NetscopeError(f"the model returns a dict with keys {sorted(map(str, output))}; "
                                f"name the one to explain (key=..., --output-key).")
        return output
    if isinstance(output, dict):
        if key not in output:
            raise NetscopeError(f"the model's output has no key {key!r}; it has "
                                f"{sorted(map(str, output))}.")
        return output[key]
    if isinstance(output, (tuple, list)) and isinstance(key, int):
        if not -len(output) <= key < len(output):
            raise NetscopeError(f"the model returns {len(output)} outputs; position {key} "
                                f"does not exist.")
        return output[key]
    raise NetscopeError(f"key {key!r} names a part of the output, but the model returns "
                        f"{type(output).__name__}.")


def class_output(output: Any) -> Any:
    """The class scores in a model's output when it holds them beside other parts (the
    ``logits`` of a Hugging Face ``ImageClassifierOutput``, a dict's only entry); any other
    output as it is, for the caller's own check."""
    if isinstance(output, dict) and ("logits" in output or len(output) == 1):
        return select_output(output, None)
    return output


_READERS: WeakKeyDictionary[torch.nn.Module, RemovableHandle] = WeakKeyDictionary()
_KEYS: WeakKeyDictionary[torch.nn.Module, Key] = WeakKeyDictionary()


def reading_key(model: torch.nn.Module) -> Key:
    """The key ``read_output`` set on ``model`` (None: none), for code that copies the model
    without its hooks (traced copies) and must read the same part of its output."""
    return _KEYS.get(model)


def read_output(model: torch.nn.Module, key: Key) -> torch.nn.Module:
    """Make ``model`` return ``output[key]`` (a dict entry or tuple position) from now on,
    through one forward hook, so every command sees class scores; layer names stay the
    same. A later call replaces the earlier key (None: the whole output again) instead of
    stacking hooks. For models loaded by a command (``--output-key``); in Python pass
    ``key`` to a target."""
    previous = _READERS.pop(model, None)
    _KEYS.pop(model, None)
    if previous is not None:
        previous.remove()
    if key is None or key == "":
        return model
    _KEYS[model] = key
    _READERS[model] = model.register_forward_hook(
        lambda module, inputs, output: select_output(output, key))
    return model


def output_key(text: str | None) -> Key:
    """A command line's --output-key: a position when it is a whole number, else a key."""
    if text is None or text == "":
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def batch_size(output: Any) -> int:
    """How many images an output is for."""
    if isinstance(output, torch.Tensor):
        return output.shape[0] if output.dim() else 1
    if isinstance(output, (list, tuple)) and output and not isinstance(output[0], torch.Tensor):
        return len(output)  # one entry per image (detectors)
    if isinstance(output, dict):
        return batch_size(next(iter(output.values())))
    if isinstance(output, (list, tuple)) and output:
        return batch_size(output[0])
    raise NetscopeError(f"cannot tell the batch size of a {type(output).__name__} output.")


def detached(output: Any) -> Any:
    """The output without autograd history, whatever its structure."""
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, dict):
        return {k: detached(v) for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return type(output)(detached(v) for v in output)
    return output


@dataclass(frozen=True)
class Resolved:
    """Per-row targets: the image each row explains (``rows``), its class (-1 if none) and
    how to score it."""

    kind: str  # "class", "score", "mask", "box", "regression"
    labels: torch.Tensor  # (R,) long
    rows: torch.Tensor  # (R,) long: the image each row belongs to
    spec: Any = None  # the target it came from
    key: Key = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, idx) -> Resolved:
        if isinstance(idx, torch.Tensor):
            idx = idx.to(self.labels.device)
        return replace(self, labels=self.labels[idx], rows=self.rows[idx])

    def repeat_interleave(self, k: int) -> Resolved:
        return replace(self, labels=self.labels.repeat_interleave(k),
                       rows=self.rows.repeat_interleave(k))

    def tile(self, k: int) -> Resolved:
        return replace(self, labels=self.labels.repeat(k), rows=self.rows.repeat(k))

    def to(self, device) -> Resolved:
        return replace(self, labels=self.labels.to(device), rows=self.rows.to(device))

    def tolist(self) -> list[int]:
        return self.labels.tolist()

    def score(self, output: Any, scale: str = "logit") -> torch.Tensor:
        """(R,) scores of the rows of ``output`` (a batch of R rows). A function without a
        key gets the whole output."""
        out = _read(output, self.kind, self.key)
        if batch_size(out) != len(self):
            raise NetscopeError(f"{len(self)} targets for an output of {batch_size(out)} "
                                f"images.")
        if self.kind == "class":
            return class_score(out, self.labels, scale)
        return _checked(self.spec._score(out, self.rows), len(self), self.spec)


def _read(output: Any, kind: str, key: Key) -> Any:
    """The part of the output a target scores: a function without a key gets it whole."""
    return output if kind == "score" and key is None else select_output(output, key)


def class_score(out: Any, labels: torch.Tensor, scale: str) -> torch.Tensor:
    """Each row's class score, a softmax probability or a logit (``scale``)."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise NetscopeError(
            f"a class target needs class scores of shape (batch, classes); the model returns "
            f"{shape}. For other outputs give a target: a function of the output, "
            f"SegmentationMask, DetectorBox or Regression (netscope.vision.core.targets).")
    if scale not in SCALES:
        raise NetscopeError(f"score scale must be 'prob' or 'logit', got {scale!r}.")
    values = out.softmax(1) if scale == "prob" else out
    return values.gather(1, labels.to(out.device)[:, None])[:, 0]


def _checked(scores: Any, n: int, spec: Any) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor) or scores.shape != (n,):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise NetscopeError(f"the target {type(spec).__name__} must give one score per image, "
                            f"shape ({n},); it gave {got}.")
    return scores


class Target:
    """Base of the target kinds; ``resolve`` gives the per-image rows."""

    key: Key = None
    kind = "score"

    def label(self) -> int:
        return -1

    def resolve(self, output: Any) -> Resolved:
        n = batch_size(_read(output, self.kind, self.key))
        labels = torch.full((n,), self.label(), dtype=torch.long)
        return Resolved(self.kind, labels, torch.arange(n), self, self.key)

    def _score(self, out: Any, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Classes(Target):
    """Class indices: one for all images, one per image, or None for each image's top-1."""

    indices: int | Sequence[int] | torch.Tensor | None = None
    key: Key = None
    kind = "class"

    def resolve(self, output: Any) -> Resolved:
        out = select_output(output, self.key)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            class_score(out, torch.zeros(0, dtype=torch.long), "logit")  # the clear error
        n, c = out.shape
        if self.indices is None:
            t = out.detach().argmax(1)
        else:
            t = torch.as_tensor(self.indices, dtype=torch.long).reshape(-1).to(out.device)
            if t.numel() == 1:
                t = t.expand(n)
            if t.numel() != n:
                raise NetscopeError(f"{t.numel()} targets for a batch of {n} images; give one "
                                    f"per image.")
            bad = (t < 0) | (t >= c)
            if bad.any():
                raise NetscopeError(f"class index {int(t[bad][0])} is out of range: the model "
                                    f"has {c} outputs (0..{c - 1}).")
        return Resolved("class", t.clone(), torch.arange(n, device=t.device), self, self.key)


@dataclass(frozen=True)
class ScoreFn(Target):
    """``fn(output)`` -> one score per image (differentiable for gradient methods). It is
    also called on batches of perturbed copies (Score-CAM, Occlusion, the metrics), so it
    must score each row on its own, whatever the other rows are."""

    fn: Callable[[Any], torch.Tensor]
    key: Key = None

    def _score(self, out: Any, rows: torch.Tensor) -> torch.Tensor:
        try:
            return self.fn(out)
        except NetscopeError:
            raise
        except Exception as exc:  # the user's function: say whose error it is
            raise NetscopeError(f"the target function raised {type(exc).__name__}: {exc}") \
                from None


@dataclass(frozen=True)
class SegmentationMask(Target):
    """Sum of class ``class_index``'s logits where ``mask`` (H, W) or (N, H, W) is set;
    ``resize``: a mask of another size (e.g. the input's) is scaled to the output's (nearest)."""

    class_index: int
    mask: torch.Tensor
    key: Key = None
    resize: bool = False
    kind = "mask"

    def label(self) -> int:
        return int(self.class_index)

    def _score(self, out: Any, rows: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise NetscopeError(f"a segmentation mask target needs an output of shape (batch, "
                                f"classes, height, width); the model returns {shape}.")
        if not 0 <= self.class_index < out.shape[1]:
            raise NetscopeError(f"class {self.class_index} is out of range: the segmentation "
                                f"output has {out.shape[1]} classes.")
        mask = torch.as_tensor(self.mask).to(device=out.device, dtype=out.dtype)
        if mask.dim() == 2:
            mask = mask[None]
        if self.resize and mask.dim() == 3 and mask.shape[-2:] != out.shape[-2:]:
            mask = torch.nn.functional.interpolate(mask[:, None], size=out.shape[-2:],
                                                   mode="nearest")[:, 0]
        if mask.dim() != 3 or mask.shape[-2:] != out.shape[-2:]:
            raise NetscopeError(f"the mask has shape {tuple(self.mask.shape)}, but the "
                                f"segmentation output is {out.shape[-2]}x{out.shape[-1]}; give "
                                f"a (height, width) or (images, height, width) mask of that "
                                f"size.")
        masks = mask[rows.to(out.device)] if mask.shape[0] > 1 else mask
        return (out[:, self.class_index] * masks).sum((1, 2))


@dataclass(frozen=True)
class DetectorBox(Target):
    """The score of the detection of class ``class_index`` whose box overlaps ``box``
    (x1, y1, x2, y2; one for all images or (N, 4)) most, if its IoU is at least ``iou``;
    else 0 (the map is then empty)."""

    box: Sequence[float] | torch.Tensor
    class_index: int
    iou: float = 0.5
    key: Key = None
    kind = "box"

    def label(self) -> int:
        return int(self.class_index)

    def _score(self, out: Any, rows: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, (list, tuple)) or not all(
                isinstance(d, dict) and {"boxes", "labels", "scores"} <= set(d) for d in out):
            raise NetscopeError("a box target needs a detector's output: one dict with "
                                "'boxes', 'labels' and 'scores' per image (torchvision style).")
        boxes = torch.as_tensor(self.box, dtype=torch.float64).reshape(-1, 4)
        scores = []
        for r, det in zip(rows.tolist(), out, strict=True):
            want = boxes[r if boxes.shape[0] > 1 else 0].to(det["boxes"].device)
            overlap = box_iou(det["boxes"].double(), want[None])[:, 0]
            ok = (det["labels"] == self.class_index) & (overlap >= self.iou)
            scores.append(det["scores"][ok].max() if ok.any() else det["scores"].sum() * 0)
        return torch.stack(scores)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) intersection over union of (x1, y1, x2, y2) boxes."""
    lo = torch.maximum(a[:, None, :2], b[None, :, :2])
    hi = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area = lambda z: (z[:, 2:] - z[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, 1), 0)


@dataclass(frozen=True)
class Regression(Target):
    """An output value: the output itself for (N,) or (N, 1), column ``index`` of (N, K)."""

    index: int | None = None
    key: Key = None
    kind = "regression"

    def _score(self, out: Any, rows: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.dim() not in (1, 2):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise NetscopeError(f"a regression target needs an output of shape (batch,) or "
                                f"(batch, outputs); the model returns {shape}.")
        if out.dim() == 1:
            return out
        if self.index is None:
            if out.shape[1] != 1:
                raise NetscopeError(f"the model has {out.shape[1]} outputs; name the one to "
                                    f"explain (Regression(index=...)).")
            return out[:, 0]
        if not -out.shape[1] <= self.index < out.shape[1]:
            raise NetscopeError(f"output {self.index} does not exist: the model has "
                                f"{out.shape[1]} outputs.")
        return out[:, self.index]


TargetLike = int | Sequence[int] | torch.Tensor | Target | Resolved | Callable | None


def as_target(targets: TargetLike) -> Target | Resolved:
    """Any accepted target form as a Target (or an already resolved one)."""
    if isinstance(targets, (Target, Resolved)):
        return targets
    if callable(targets) and not isinstance(targets, torch.Tensor):
        return ScoreFn(targets)
    return Classes(targets)


def resolve(output: Any, targets: TargetLike) -> Resolved:
    """Per-image targets for a batch's clean ``output`` (see the module docstring)."""
    t = as_target(targets)
    if isinstance(t, Resolved):
        n = batch_size(output)
        if len(t) != n:
            raise NetscopeError(f"{len(t)} targets for a batch of {n} images; give one per "
                                f"image.")
        return t
    return t.resolve(output)
