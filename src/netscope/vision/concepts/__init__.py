"""Features as directions: dictionaries of a layer's activations (NMF, sparse autoencoders),
their quality, and the sample pass that feeds them."""

# the dictionary methods, importable without PyTorch (the command line lists them)
METHODS = ("nmf", "topk-sae", "batchtopk-sae", "archetypal-sae")
# how a circuit's checks change a node (see circuit_checks.py)
ABLATIONS = ("zero", "mean", "patch")
