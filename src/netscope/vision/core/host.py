"""Results leave the device in one place: ``host`` gives a NumPy array on the CPU, in
float32 for half-precision tensors (NumPy has no bfloat16)."""

from __future__ import annotations

import numpy as np
import torch


def host(t: torch.Tensor) -> np.ndarray:
    """``t`` as a NumPy array: detached, on the CPU, float16/bfloat16 widened to float32."""
    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.cpu().numpy()
