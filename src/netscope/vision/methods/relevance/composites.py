"""Composites: which rule each layer gets, by its type and position, as Zennit names them
(the table is ``relevance.COMPOSITE_TABLE``; this module makes its rules).

Every composite passes relevance unchanged through activations and a left-over batch norm
(``Pass``), normalizes sums, average pooling and attention's weighted sum of values
(``Norm``) and gives layer norms the epsilon rule with the SD held constant; they differ in
the convolutions, dense layers and the first layer:

- ``epsilon-plus``: z-plus for convolutions, epsilon for dense layers;
- ``epsilon-plus-flat``: the same, flat for the first convolution or dense layer;
- ``epsilon-gamma-box``: z-box for the first convolution (the input's pixel bounds),
  gamma for the other convolutions, epsilon for dense layers;
- ``epsilon-alpha2-beta1``: alpha=2, beta=1 for convolutions, epsilon for dense layers;
- ``epsilon-alpha2-beta1-flat``: the same, flat for the first layer;
- ``epsilon``: epsilon everywhere (``epsilon=0``: LRP-0 everywhere).

A user's own rules go by layer name (``rules={"features.0": Flat()}``) and win over the
composite; a name matches the layer and everything inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netscope.errors import NetscopeError
from netscope.vision.methods.relevance import ATTENTION, BASE, COMPOSITE_TABLE
from netscope.vision.methods.relevance.rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Pass,
    Rule,
    ZBox,
    ZPlus,
)

ROLES = tuple(BASE)  # conv, dense, pool, sum, activation, batchnorm, layernorm, attention
RULES = {  # the table's rule names, made with a composite's parameters
    "pass": lambda c: Pass(), "norm": lambda c: Norm(c.stabilizer),
    "epsilon": lambda c: Epsilon(c.epsilon), "zplus": lambda c: ZPlus(c.stabilizer),
    "gamma": lambda c: Gamma(c.gamma, c.stabilizer),
    "alpha2-beta1": lambda c: AlphaBeta(2.0, 1.0, c.stabilizer),
    "flat": lambda c: Flat(c.stabilizer), "zbox": lambda c: c.zbox(),
}


@dataclass(frozen=True)
class Composite:
    """Rules by layer role; ``choose(role, name, first)`` gives one layer's rule."""

    name: str = "epsilon-plus"
    epsilon: float = 1e-6
    gamma: float = 0.25
    stabilizer: float = 1e-6
    low: object = None  # z-box bounds: the input's lowest and highest values
    high: object = None
    rules: dict[str, Rule] = field(default_factory=dict)
    attention: str = "ah"  # "ah": the weights held constant; "attnlrp": AttnLRP's rules

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION:
            raise NetscopeError(f"attention must be one of {', '.join(ATTENTION)} (how "
                                f"relevance passes attention), got {self.attention!r}.")
        if self.name not in COMPOSITE_TABLE:
            raise NetscopeError(f"unknown composite {self.name!r}; choose from "
                                f"{', '.join(COMPOSITE_TABLE)}.")
        if not self.epsilon > 0 and self.name != "epsilon":
            raise NetscopeError(f"epsilon must be > 0, got {self.epsilon} (LRP-0 is "
                                f"composite 'epsilon' with epsilon 0).")
        if not self.gamma >= 0:
            raise NetscopeError(f"gamma must be >= 0, got {self.gamma}.")
        bad = {k: v for k, v in self.rules.items() if not isinstance(v, Rule)}
        if bad:
            name, value = next(iter(bad.items()))
            raise NetscopeError(f"rules[{name!r}] must be an LRP rule (Epsilon(), ZPlus(), "
                                f"Gamma(), AlphaBeta(), Flat(), WSquare(), ZBox(), Norm(), "
                                f"Pass()), got {value!r}.")

    def choose(self, role: str, name: str, first: bool) -> Rule:
        """The rule of the layer ``name`` playing ``role`` (one of ROLES): the user's, else
        the composite's table entry (``relevance.COMPOSITE_TABLE``)."""
        own = self.own_rule(name)
        if own is not None:
            return own
        spec = COMPOSITE_TABLE[self.name]
        if first and spec.first is not None and role in spec.first_roles:
            return RULES[spec.first](self)
        table = {**BASE, **spec.layers}
        return RULES[table.get(role, table["conv"])](self)  # a whole module (MHA): as a conv

    def zbox(self) -> Rule:
        if self.low is None or self.high is None:
            raise NetscopeError(f"{self.name} needs the input's bounds (low, high): the "
                                f"lowest and highest value a pixel can take after "
                                f"normalization.")
        return ZBox(self.low, self.high, self.stabilizer)

    def own_rule(self, name: str) -> Rule | None:
        """The user's rule for this layer or the closest enclosing one, if any."""
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            rule = self.rules.get(".".join(parts[:k]))
            if rule is not None:
                return rule
        return None
