"""Memory estimates before large work, so a too-large request is refused with the numbers
instead of dying in the allocator (or in the kernel's out-of-memory killer)."""

from __future__ import annotations

import os

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.capture import capture, hooks

# Gradient ascent keeps every activation for the backward pass, its gradient, and
# temporaries of about the same size: three copies is what PyTorch needed here for Lite0.
COPIES = 3


def available_bytes() -> int | None:
    """Memory the kernel can give this process now (MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def activation_elements(model: nn.Module, probe: int, upto: str | None = None) -> int:
    """Elements of every leaf module's output for one ``probe`` x ``probe`` image, counted
    up to the first output of module ``upto`` (all of them when None)."""
    total, done = 0, False
    weight = next(model.parameters(), torch.zeros(()))

    def count(name):
        def hook(module, inputs, output):
            nonlocal total, done
            if not done and isinstance(output, torch.Tensor):
                total += output.numel()
            done = done or name == upto
        return hook

    watched = ((m, count(name)) for name, m in model.named_modules()
               if name and (not list(m.children()) or name == upto))
    with capture(model, []), hooks(watched), torch.no_grad():
        model(torch.zeros(1, 3, probe, probe, dtype=weight.dtype, device=weight.device))
    return total


def check_ascent_memory(model: nn.Module, probe: int, size: int, images: int,
                        upto: str | None = None) -> int:
    """Estimated bytes for gradient ascent on ``images`` pictures of ``size`` pixels; a
    clear error when that exceeds the memory available now. Returns the estimate."""
    per_image = activation_elements(model, probe, upto) * (size / probe) ** 2
    dtype_bytes = next(model.parameters(), torch.zeros(())).element_size()
    need = int(per_image * images * dtype_bytes * COPIES)
    free = available_bytes()
    if free is not None and need > 0.8 * free:
        fits = int(size * (0.8 * free / need) ** 0.5)
        raise NetscopeError(
            f"{images} picture(s) of {size}x{size} pixels need about {need / 2**30:.1f} GiB "
            f"for gradient ascent, but only {free / 2**30:.1f} GiB is available; use a size "
            f"of about {max(fits, 16)} or less, or fewer filters/classes per run.")
    return need
