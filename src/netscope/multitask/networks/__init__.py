"""The neural families (per-task, pooled, shared trunk, task-gated) and the tensor programs
that train many small networks at once."""
