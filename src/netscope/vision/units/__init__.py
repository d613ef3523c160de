"""Units across a whole dataset: receptive fields, strongest examples, statistics, which
units are alike, circuits between layers, and a prediction explained by its units."""

# how a unit's relevance to a class is measured (importable without PyTorch: the command
# line lists them)
RELEVANCE = ("gradient", "lrp")
