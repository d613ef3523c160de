"""Record what layers compute, and always leave the model exactly as it was found.

Every hook a technique puts on a model goes through this module: ``capture`` for recorded
layers, ``hooks`` for probes that watch many modules (layer shapes, the layer choice,
memory estimates, attention weights). Both remove their hooks on exit, also when the body
raises; ``capture`` also restores every submodule's train/eval flag and every parameter's
requires_grad. Two things change a model otherwise, each undone the same way or on purpose:
guided backpropagation swaps ReLU forwards for one call (``methods.guided``), and
``targets.read_output`` keeps one hook on a model a command loaded with ``--output-key``.
Parameters are frozen while inside, and gradients are taken with ``torch.autograd.grad``,
so nothing ever accumulates in ``.grad``.

Two traps it avoids:
- in-place operations after a layer (``ReLU(inplace=True)``) would overwrite the recorded
  tensor, so the hook hands the network a copy and keeps the original;
- a module called several times in one forward pass (a shared activation module) records
  every call; ``LayerRef.call`` picks one (default: the last).

With ``cut=True`` the graph starts at the recorded layer (its output is a fresh leaf), so a
backward pass runs only from the score down to that layer and nothing before it is recorded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.layers import find_layer


@dataclass(frozen=True)
class LayerRef:
    """A layer's output (or input) at one of its calls; text form 'name[:input][#call]'."""

    name: str
    port: str = "output"
    call: int = -1

    @classmethod
    def parse(cls, ref: str | LayerRef) -> LayerRef:
        if isinstance(ref, LayerRef):
            return ref
        text, call = ref, -1
        if "#" in text:
            text, _, k = text.rpartition("#")
            try:
                call = int(k)
            except ValueError:
                raise NetscopeError(f"layer {ref!r}: the call after '#' must be an integer.") \
                    from None
        port = "output"
        if text.endswith(":input") or text.endswith(":output"):
            text, _, port = text.rpartition(":")
        return cls(text, port, call)

    def __str__(self) -> str:
        port = "" if self.port == "output" else f":{self.port}"
        call = "" if self.call == -1 else f"#{self.call}"
        return f"{self.name}{port}{call}"


class Recording:
    """Tensors recorded per layer (name and port), one per call of the module."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], list[torch.Tensor]] = defaultdict(list)

    def all_calls(self, ref: str | LayerRef) -> list[torch.Tensor]:
        ref = LayerRef.parse(ref)
        return self.calls.get((ref.name, ref.port), [])

    def __getitem__(self, ref: str | LayerRef) -> torch.Tensor:
        ref = LayerRef.parse(ref)
        calls = self.all_calls(ref)
        if not calls:
            raise NetscopeError(f"layer {ref} did not run in the forward pass.")
        try:
            return calls[ref.call]
        except IndexError:
            raise NetscopeError(f"layer {ref} ran {len(calls)} time(s); call {ref.call} "
                                f"does not exist.") from None

    def clear(self) -> None:
        self.calls.clear()


def _state(model: nn.Module):
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    return modes, flags


def _restore(modes, flags) -> None:
    for m, training in modes:
        m.training = training
    for p, flag in flags:
        p.requires_grad_(flag)


@contextmanager
def hooks(pairs: Iterable[tuple[nn.Module, Callable]], *, pre: bool = False,
          with_kwargs: bool = False, prepend: bool = False) -> Iterator[None]:
    """Forward hooks (``pre``: pre-forward hooks) of one's own on modules for the block,
    each ``(module, hook)``; ``prepend``: before the module's other hooks. Always removed
    on exit."""
    handles = []
    try:
        for module, hook in pairs:
            if isinstance(module, torch.jit.ScriptModule):
                raise NetscopeError(SCRIPTED)
            register = module.register_forward_pre_hook if pre else module.register_forward_hook
            handles.append(register(hook, with_kwargs=with_kwargs, prepend=prepend))
        yield
    finally:
        for h in handles:
            h.remove()


class StopForward(Exception):
    """Raised by a hook to end a forward pass once the recorded layer has run."""


SCRIPTED = ("a TorchScript model cannot be hooked, so what reads a layer (CAM methods, "
            "LRP, activations, filters, the atlas, dictionaries, concepts, circuits) needs the "
            "Python model: pass 'package.module:function' returning it. With TorchScript, "
            "methods that need no layer work: saliency, SmoothGrad, Integrated Gradients, "
            "occlusion.")


@contextmanager
def capture(model: nn.Module, layers: Sequence[str | LayerRef] = (), *, cut: bool = False,
            eval_mode: bool = True, stop: bool = False,
            edit: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Iterator[Recording]:
    """Record ``layers`` during forward passes inside the block; see the module docstring.

    ``stop=True`` ends each forward pass (raising StopForward, caught by ``run_until``) once
    the one recorded layer has run, so the rest of the network is never computed. It needs a
    single layer with an explicit call index (``count_calls`` tells the last one); otherwise
    the pass runs to the end. ``edit`` (one layer) replaces what the network receives from
    the layer by ``edit(recorded tensor)`` (at the named call, or at every call), as
    perturbation methods such as Ablation-CAM need."""
    refs = [LayerRef.parse(r) for r in layers]
    if (cut or edit is not None) and len(refs) != 1:
        raise NetscopeError("cut=True and edit start at one layer; pass exactly one.")
    if refs and isinstance(model, torch.jit.ScriptModule):
        raise NetscopeError(SCRIPTED)
    modules = [(ref, find_layer(model, ref.name)) for ref in refs]  # fail before touching
    modes, flags = _state(model)
    record = Recording()
    handles = []
    try:
        if eval_mode:
            model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        handles += [m.register_forward_pre_hook(_transposed_contiguous, with_kwargs=True)
                    for m in model.modules()
                    if isinstance(m, nn.MultiheadAttention) and m.batch_first]
        for ref, module in modules:  # first among the module's hooks: what the recording
            # (or an edit) makes of the layer is what every later hook and module sees
            if ref.port == "input":
                handles.append(module.register_forward_pre_hook(
                    _pre_hook(ref, record, cut, stop and len(refs) == 1, edit), prepend=True))
            elif ref.port == "output":
                handles.append(module.register_forward_hook(
                    _hook(ref, record, cut, stop and len(refs) == 1, edit), prepend=True))
            else:
                raise NetscopeError(f"layer {ref}: the port must be 'input' or 'output'.")
        yield record
    finally:
        for h in handles:
            h.remove()
        _restore(modes, flags)


def _transposed_contiguous(module: nn.MultiheadAttention, args: tuple, kwargs: dict):
    """A batch-first attention's input laid out so that its internal transpose to (tokens,
    batch, dim) is contiguous: with the weights frozen, PyTorch cannot fold the input
    projection of a non-contiguous input into one matrix product and runs a batched
    product over an expanded weight instead, 1.7x slower on ViT-B/16. Same values, and
    the same tensor for query, key and value where they were one."""
    if not args or not isinstance(args[0], torch.Tensor) or args[0].dim() != 3 \
            or args[0].transpose(0, 1).is_contiguous():
        return None
    q = args[0]
    laid = q.transpose(0, 1).contiguous().transpose(0, 1)
    return tuple(laid if a is q else a for a in args), kwargs


def _keep(ref: LayerRef, record: Recording, value, cut: bool, edit=None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise NetscopeError(f"layer {ref} produces {type(value).__name__}, not a tensor; "
                            f"pick a layer whose {ref.port} is a single tensor.")
    calls = record.calls[(ref.name, ref.port)]
    this_call = ref.call == -1 or ref.call == len(calls)
    if cut and this_call:
        value = value.detach().requires_grad_(True)
    calls.append(value)
    if edit is not None and this_call:
        return edit(value)
    return value.clone()  # downstream in-place ops change the copy, never the record


def _hook(ref, record, cut, stop, edit=None):
    def hook(module, inputs, output):
        kept = _keep(ref, record, output, cut, edit)
        if stop and ref.call >= 0 and len(record.all_calls(ref)) > ref.call:
            raise StopForward
        return kept
    return hook


def _pre_hook(ref, record, cut, stop, edit=None):
    def hook(module, inputs):
        if not inputs:
            raise NetscopeError(f"layer {ref} is called without inputs.")
        kept = _keep(ref, record, inputs[0], cut, edit)
        if stop and ref.call >= 0 and len(record.all_calls(ref)) > ref.call:
            raise StopForward
        return (kept, *inputs[1:])
    return hook


def run_until(model: nn.Module, x: torch.Tensor):
    """Run a forward pass that a stopping hook may end early; returns the output or None."""
    try:
        return model(x)
    except StopForward:
        return None


def count_calls(model: nn.Module, ref: str | LayerRef, x: torch.Tensor) -> int:
    """How many times the layer runs in one forward pass of ``x``."""
    ref = LayerRef.parse(ref)
    with capture(model, [ref]) as rec, torch.no_grad():
        model(x)
        return len(rec.all_calls(ref))
