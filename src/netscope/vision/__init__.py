"""The CNN half: activations, gradient ascent, saliency, CAM and Grad-CAM on any classifier."""
