"""Drawing never touches the caller's Matplotlib state (a notebook's backend and figures)."""

import subprocess
import sys

CODE = """
import sys
import matplotlib
matplotlib.use("svg")
import numpy as np
import netscope.render.blandaltman, netscope.render.comparison, netscope.render.evaluation
import netscope.render.grids, netscope.render.task_maps, netscope.render.vision_report
from netscope.render.grids import feature_grid_png
from netscope.render.blandaltman import bland_altman_png
png = feature_grid_png(np.random.default_rng(0).random((4, 5, 5)), "layer", 4)
png2 = bland_altman_png(np.arange(5.0), np.arange(5.0) + 1, "t", "u")
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules,
      png[:4] == b"\\x89PNG", png2[:4] == b"\\x89PNG")
"""


def test_render_keeps_the_backend_and_never_loads_pyplot():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["svg", "False", "True", "True"]


def test_bland_altman_labels_never_read_minus_zero():
    """A bias of -0.0013 was labelled "bias -0.00"; labels keep three significant digits."""
    from netscope.render.blandaltman import value_text

    assert value_text(-0.0013) == "-0.0013"
    assert value_text(-1e-15) == "0" and value_text(0.0) == "0"
    assert value_text(12.3456) == "12.3" and value_text(-2.5) == "-2.5"
