"""Layer-wise relevance propagation (LRP): rules (how one layer passes relevance down),
composites (which rule each layer gets) and the propagation itself, a modified backward pass
over a traced, canonized copy of the model."""
