"""Linear and mixed models: ridge (per task, pooled, mean-regularized), the linear
mixed-effects model, and multi-task relationship learning."""
