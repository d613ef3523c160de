"""Top-k classes per image, with their names and probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from netscope.vision.core.capture import capture
from netscope.vision.core.targets import class_output
from netscope.vision.models.classes import class_label


class Predictions(list):
    """Per image, the top-k (index, name, probability) tuples (a list), shown in a notebook
    as a table."""

    def _repr_html_(self) -> str:
        from netscope.render.notebook import fragment, table_html

        rows = [(image, rank + 1, name, index, f"{p:.1%}")
                for image, top in enumerate(self) for rank, (index, name, p) in enumerate(top)]
        return fragment(table_html(("image", "rank", "class", "index", "probability"), rows))


def predict(model: nn.Module, x: torch.Tensor, k: int = 5,
            names: Sequence[str] | None = None) -> Predictions:
    """Top-k (index, name, probability) per image."""
    with capture(model, []), torch.no_grad():
        probs = class_output(model(x)).softmax(1)
    top = probs.topk(min(k, probs.shape[1]), dim=1)
    return Predictions([[(int(i), class_label(names, int(i)), float(p))
                         for p, i in zip(ps, idx, strict=True)]
                        for ps, idx in zip(top.values, top.indices, strict=True)])
