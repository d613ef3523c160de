"""Models and their inputs: the zoo (``load_model``), preprocessing, class names, images,
top-k predictions."""
