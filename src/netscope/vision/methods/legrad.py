"""LeGrad (Bousselham et al. 2024; TorchCAM's ``LeGrad``) for vision transformers: at each
block l, the class score the model would give if it stopped there, s^l = head(norm(z^l))
(the block's tokens read by the model's own final norm and head, as a logit lens), is
differentiated with respect to that block's attention probabilities A^l; the positive part
of dS^l/dA^l, averaged over heads and query tokens, gives each key (patch) token's
relevance; the blocks' maps are averaged. Attention values are not multiplied in.

The head is found on timm-like models (``norm`` and ``head``, with ``fc_norm`` and
``global_pool``), torchvision's (``encoder.ln`` and ``heads``) and Hugging Face's
(``vit.layernorm`` and ``classifier``); any other model gives its own
``score_projection(tokens) -> logits`` (Python). Class targets only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from netscope.errors import NetscopeError
from netscope.vision.core.attention_record import attention_recorded
from netscope.vision.core.capture import capture, hooks
from netscope.vision.core.entry_checks import checked_images
from netscope.vision.core.heatmaps import Heatmaps, normalize_maps
from netscope.vision.core.layer_choice import block_list
from netscope.vision.core.targets import TargetLike, class_score, detached, resolve
from netscope.vision.core.token_grid import infer_layout, patch_size

Projection = Callable[[torch.Tensor], torch.Tensor]


def score_projection(model: nn.Module, prefix: int) -> Projection | None:
    """tokens (N, T, D) -> class logits, through the model's own final norm and head."""
    norm, head = getattr(model, "norm", None), getattr(model, "head", None)
    if isinstance(head, nn.Module) and isinstance(norm, nn.Module):
        fc_norm = getattr(model, "fc_norm", None) or nn.Identity()
        token = getattr(model, "global_pool", "token") == "token" and \
            getattr(model, "use_cls", True) and prefix > 0

        def timm_like(z: torch.Tensor) -> torch.Tensor:
            z = norm(z)
            return head(fc_norm(z[:, 0] if token else z[:, prefix:].mean(1)))
        return timm_like
    encoder, heads = getattr(model, "encoder", None), getattr(model, "heads", None)
    if isinstance(getattr(encoder, "ln", None), nn.Module) and isinstance(heads, nn.Module):
        return lambda z: heads(encoder.ln(z)[:, 0])
    vit, classifier = getattr(model, "vit", None), getattr(model, "classifier", None)
    if isinstance(getattr(vit, "layernorm", None), nn.Module) and \
            isinstance(classifier, nn.Module):
        return lambda z: classifier(vit.layernorm(z)[:, 0])
    return None


def _graph_starts_here(_module: nn.Module, args: tuple) -> tuple | None:
    """The first chosen block's input as a leaf that needs gradients, so the graph (and the
    fused attention's loss of its fast path) starts there."""
    if args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
        return (args[0].detach().requires_grad_(True), *args[1:])
    return None


@checked_images
def legrad(model: nn.Module, x: torch.Tensor, targets: TargetLike = None, *,
           blocks: int | None = None, score_projection_fn: Projection | None = None,
           normalize: str = "max") -> Heatmaps:
    """LeGrad maps at the patch grid over the last ``blocks`` blocks (None: all); see the
    module docstring."""
    names = block_list(model)
    if not names:
        raise NetscopeError("LeGrad needs a vision transformer's list of blocks (a Sequential "
                            "or ModuleList of blocks); this model has none. Use Grad-CAM.")
    chosen = names if not blocks else names[-blocks:]
    blocks_chosen = [model.get_submodule(n) for n in chosen]
    with capture(model, chosen) as rec, \
            attention_recorded(model, graph=True, within=blocks_chosen) as att:
        with hooks([(blocks_chosen[0], _graph_starts_here)], pre=True):
            out = model(x.detach())  # weights are frozen: no graph before the first block
        if att and not att[0].requires_grad:  # the block's input came by keyword
            att.clear()
            out = model(x.detach().clone().requires_grad_(True))
        if len(att) != len(chosen):
            raise NetscopeError(f"LeGrad reads one attention per block; the {len(chosen)} "
                                f"blocks chosen computed {len(att)} attentions.")
        t = resolve(detached(out), targets)
        if t.kind != "class":
            raise NetscopeError("LeGrad explains a class score: give class targets.")
        tokens = att[0].shape[-1]
        layout = infer_layout((x.shape[0], tokens, 1), tuple(x.shape[-2:]), patch_size(model),
                              "the attention's token sequence")
        project = score_projection_fn or score_projection(model, layout.prefix)
        if project is None:
            raise NetscopeError("LeGrad scores each block with the model's own final norm and "
                                "head, and found neither here; pass score_projection_fn="
                                "tokens -> logits.")
        maps = []
        for name, a in zip(chosen, att, strict=True):
            s = class_score(project(rec[name]), t.labels, "logit")
            (g,) = torch.autograd.grad(s.sum(), a, retain_graph=True)
            maps.append(g.relu().mean((1, 2))[:, layout.prefix:])
    h, w = layout.grid
    mean = torch.stack(maps).mean(0).reshape(-1, h, w).to(x.dtype)
    return Heatmaps(normalize_maps(mean, normalize), detached(out), t, t.labels,
                    f"attention ({len(chosen)} blocks)", "legrad", normalize)
