"""What every method uses: hooks (``capture``, the one place that records layers), targets,
token grids, layer choice, the device, batches of perturbed inputs, the ``Heatmaps`` result."""
