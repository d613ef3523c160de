"""Features as directions: dictionaries of a layer's activations (NMF, sparse autoencoders),
their quality, and the sample pass that feeds them."""
