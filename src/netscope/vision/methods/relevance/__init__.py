"""Layer-wise relevance propagation (LRP): rules (how one layer passes relevance down),
composites (which rule each layer gets) and the propagation itself, a modified backward pass
over a traced, canonized copy of the model.

The composites are a table, as Zennit's ``LayerMapComposite``: a rule per layer role over
the shared ones (``BASE``), and a rule for the first layer. Rules go by name here (this
module imports no PyTorch: the registry and the command line read the composites' names from
the table); ``composites.RULES`` makes them. A new composite is one entry."""

from __future__ import annotations

from dataclasses import dataclass, field

# every composite: relevance passes activations and a left-over batch norm unchanged, sums,
# pooling and attention's weighted sum of values are normalized, layer norms get epsilon
BASE = {"activation": "pass", "batchnorm": "pass", "pool": "norm", "sum": "norm",
        "attention": "norm", "layernorm": "epsilon", "conv": "epsilon", "dense": "epsilon"}


@dataclass(frozen=True)
class CompositeSpec:
    """A composite: ``layers`` maps roles to rule names (over ``BASE``); ``first`` is the
    rule of the first layer when its role is one of ``first_roles``."""

    layers: dict[str, str] = field(default_factory=dict)
    first: str | None = None
    first_roles: tuple[str, ...] = ("conv", "dense")


COMPOSITE_TABLE = {
    "epsilon-plus": CompositeSpec({"conv": "zplus"}),
    "epsilon-plus-flat": CompositeSpec({"conv": "zplus"}, first="flat"),
    "epsilon-gamma-box": CompositeSpec({"conv": "gamma"}, first="zbox", first_roles=("conv",)),
    "epsilon-alpha2-beta1": CompositeSpec({"conv": "alpha2-beta1"}),
    "epsilon-alpha2-beta1-flat": CompositeSpec({"conv": "alpha2-beta1"}, first="flat"),
    "epsilon": CompositeSpec({"pool": "epsilon", "sum": "epsilon", "attention": "epsilon"}),
}
COMPOSITES = tuple(COMPOSITE_TABLE)
ATTENTION = ("ah", "attnlrp")  # how relevance passes attention (``attention`` module)
