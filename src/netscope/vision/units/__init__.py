"""Units across a whole dataset: receptive fields, strongest examples, statistics, which
units are alike, circuits between layers, and a prediction explained by its units."""
