"""The multi-task half: grouped tabular data, model families, training and comparison."""
