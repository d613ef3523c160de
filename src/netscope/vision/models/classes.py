"""Class names for a model's outputs, and lookup by name with close-match suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from netscope.errors import NetscopeError

DEFAULT_MODEL = "efficientnet-lite0"


def known_class_names(spec: str) -> tuple[str, ...] | None:
    """The class names a model spec will have, when known without loading it (ImageNet
    for the default and torchvision's classifiers), so class arguments are checked before
    PyTorch loads (this module does not import it)."""
    if spec == DEFAULT_MODEL or spec.startswith("torchvision:"):
        return imagenet_classes()
    return None


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the standard (torchvision/Keras) index order."""
    text = (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def class_label(names: Sequence[str] | None, index: int) -> str:
    """The class's name, "class N" for models without names, "score" for a target that is
    not a class (index -1)."""
    if index < 0:
        return "score"
    return names[index] if names else f"class {index}"


def resolve_class(target: int | str, names: tuple[str, ...] | None, n_outputs: int) -> int:
    """An output index from an index or a class name ("flamingo", "Egyptian cat")."""
    if isinstance(target, str) and target.strip().lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, int):
        if not 0 <= target < n_outputs:
            raise NetscopeError(f"class index {target} is out of range: the model has "
                                f"{n_outputs} outputs (0..{n_outputs - 1}).")
        return target
    if not names:
        raise NetscopeError(f"the model has no class names; give a class index 0..{n_outputs - 1}.")
    wanted = target.strip().lower().replace("_", " ")
    lowered = [n.lower() for n in names]
    if wanted in lowered:
        return lowered.index(wanted)
    close = difflib.get_close_matches(wanted, lowered, n=5, cutoff=0.6)
    contains = [n for n in lowered if wanted in n][:5]
    hints = list(dict.fromkeys(close + contains))
    hint = f" Did you mean: {', '.join(repr(names[lowered.index(h)]) for h in hints)}?" if hints \
        else ""
    raise NetscopeError(f"unknown class name {target!r}.{hint}")
