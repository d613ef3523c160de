"""What layers compute and what excites them: activations, gradient ascent (filters,
classes) and its image parametrizations, augmentations and presets."""
