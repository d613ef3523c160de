"""Where the model runs: ``--device cpu|cuda|cuda:N|mps`` (default: where the model already
is, else the CPU), checked before any work, with the input's dtype following the model's
(half precision when the model runs in it)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from netscope.errors import NetscopeError

DEVICE_TYPES = ("cpu", "cuda", "mps")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; the CPU if it has none."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter; float32 if none."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def resolve_device(spec: str | torch.device | None, model: nn.Module | None = None) \
        -> torch.device:
    """The device named by ``spec`` (checked to exist here), or the model's."""
    if spec is None or spec == "":
        return model_device(model) if model is not None else torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise NetscopeError(f"unknown device {spec!r}: use cpu, cuda, cuda:N or mps.") \
            from None
    if device.type not in DEVICE_TYPES:
        raise NetscopeError(f"unknown device {spec!r}: use cpu, cuda, cuda:N or mps.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NetscopeError(f"device {spec!r} is not available: this PyTorch sees no CUDA "
                                f"GPU (a CPU-only build, or no driver). Use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NetscopeError(f"device {spec!r} does not exist: this machine has "
                                f"{torch.cuda.device_count()} CUDA device(s).")
    if device.type == "mps" and not (hasattr(torch.backends, "mps")
                                     and torch.backends.mps.is_available()):
        raise NetscopeError(f"device {spec!r} is not available: MPS needs an Apple-silicon Mac "
                            f"with a PyTorch built for it. Use --device cpu.")
    return device


def to_device(lm, spec: str | None, key: str | None = None):
    """The loaded model moved to the device (inputs made by its preprocessing follow it,
    in the model's dtype), returning ``output[key]`` when a key is named."""
    from netscope.vision.core.targets import output_key, read_output

    device = resolve_device(spec, lm.model)
    model = read_output(lm.model.to(device), output_key(key))
    pre = replace(lm.preprocess, device=str(device), dtype=str(model_dtype(model))
                  .removeprefix("torch."))
    return replace(lm, model=model, preprocess=pre)
