"""Modules of some kinds given another forward for the length of one call (a method that
changes their backward pass: guided backpropagation, the deconvnet, DeepLIFT), and always
given their own back, also when the call raises."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def swapped_forwards(model: nn.Module, kinds: tuple[type[nn.Module], ...],
                     make: Callable[[nn.Module, Callable], Callable]) -> Iterator[int]:
    """Each module of ``kinds`` in ``model`` runs ``make(module, its own forward)`` instead;
    yields how many were swapped."""
    swapped = []
    try:
        for m in model.modules():
            if isinstance(m, kinds):
                own = m.__dict__.get("forward")
                swapped.append((m, own))
                m.forward = make(m, own or type(m).forward.__get__(m))
        yield len(swapped)
    finally:
        for m, own in swapped:
            if own is None:
                del m.forward  # back to the class's forward
            else:
                m.forward = own
