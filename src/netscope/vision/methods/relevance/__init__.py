"""Layer-wise relevance propagation (LRP): rules (how one layer passes relevance down),
composites (which rule each layer gets) and the propagation itself, a modified backward pass
over a traced, canonized copy of the model."""

# the composites' and attention rules' names, importable without PyTorch (the registry and
# the command line read them from here)
COMPOSITES = ("epsilon-plus", "epsilon-plus-flat", "epsilon-gamma-box",
              "epsilon-alpha2-beta1", "epsilon-alpha2-beta1-flat", "epsilon")
ATTENTION = ("ah", "attnlrp")  # how relevance passes attention (``attention`` module)
