"""Tree ensembles: gradient-boosted trees with the task as a feature, exported to arrays."""
