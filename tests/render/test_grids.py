"""Feature-map grids: which channels are drawn, and how they are labelled."""

import numpy as np
import pytest
from PIL import Image

from netscope.errors import NetscopeError
from netscope.render.grids import choose_channels, feature_grid_png


def _act(means):
    return np.stack([np.full((3, 3), m, dtype=np.float32) for m in means])


def test_strongest_channels_first():
    act = _act([0.1, 5.0, -2.0, 3.0, 3.0])
    assert choose_channels(act, 3, "strongest") == [1, 3, 4]  # ties keep index order
    assert choose_channels(act, 3, "index") == [0, 1, 2]
    assert choose_channels(act, 3, "auto") == [1, 3, 4]  # not all fit: strongest
    assert choose_channels(act, 8, "auto") == [0, 1, 2, 3, 4]  # all fit: in order


@pytest.mark.parametrize("kwargs, message", [
    (dict(order="loudest"), "channel order must be one of auto, index, strongest"),
    (dict(max_channels=0), "max_channels must be at least 1"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(NetscopeError, match=message):
        choose_channels(_act([1.0, 2.0]), **{"max_channels": 4, **kwargs})


@pytest.mark.parametrize("shared", [False, True])
def test_grid_png(tmp_path, shared):
    """Four constant channels 0, 1, 2, 3: on one colour scale each tile is its own viridis
    colour (0, 1/3, 2/3, 1 of the scale, each a block of pixels); each scaled on its own,
    a constant map has no pattern and every tile is the scale's bottom colour. A dead
    channel breaks neither."""
    import io

    from matplotlib import colormaps

    act = np.stack([np.full((6, 6), v, np.float32) for v in (0.0, 1.0, 2.0, 3.0)])
    png = feature_grid_png(act, "block", max_channels=4, order="index", shared=shared)
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        rgb = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    viridis = colormaps["viridis"]

    def pixels_of(level: float) -> int:
        want = np.round(np.array(viridis(level)[:3]) * 255).astype(int)
        return int((np.abs(rgb - want).max(1) <= 2).sum())

    counts = [pixels_of(v) for v in (0.0, 1 / 3, 2 / 3, 1.0)]
    if shared:
        assert min(counts) > 1000, counts  # four tiles of 6x6 values, each ~1,500 px
    else:
        assert counts[0] > 4 * 1000 and max(counts[1:3]) < 50, counts
    dead = np.random.default_rng(0).normal(size=(12, 5, 5)).astype(np.float32)
    dead[3] = 0.0
    path = tmp_path / "grid.png"
    path.write_bytes(feature_grid_png(dead, "block", max_channels=4, shared=shared))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200
