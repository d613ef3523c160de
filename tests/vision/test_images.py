"""Image files of every awkward kind load as RGB float32 in [0, 1], or fail clearly."""

import numpy as np
import pytest
from PIL import Image

from netscope.errors import NetscopeError
from netscope.vision.models.images import (
    MAX_SIDE,
    expand_sources,
    load_image,
    sample_image,
    save_png,
    to_rgb,
)


def test_grayscale(tmp_path):
    Image.fromarray(np.full((5, 7), 128, np.uint8), "L").save(tmp_path / "g.png")
    x = load_image(tmp_path / "g.png")
    assert x.shape == (5, 7, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, 128 / 255)


def test_rgba_composited_over_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 0] = 255
    a[:2, ..., 3] = 255  # top half opaque red, bottom transparent
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    np.testing.assert_allclose(x[0, 0], [1, 0, 0])
    np.testing.assert_allclose(x[3, 0], [1, 1, 1])


def test_16_bit(tmp_path):
    Image.fromarray(np.full((3, 3), 65535, np.uint16)).save(tmp_path / "w.png")
    x = load_image(tmp_path / "w.png")
    np.testing.assert_allclose(x, 1.0)


def test_very_large_image_is_reduced(tmp_path):
    Image.new("RGB", (MAX_SIDE * 2 + 10, 300), (10, 20, 30)).save(tmp_path / "big.png")
    x = load_image(tmp_path / "big.png")
    assert max(x.shape[:2]) <= MAX_SIDE


def test_not_an_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello, I am text")
    with pytest.raises(NetscopeError, match="not an image file"):
        load_image(tmp_path / "notes.jpg")


def test_truncated_image(tmp_path):
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(NetscopeError, match="cannot read the image"):
        load_image(tmp_path / "t.jpg")


def test_missing(tmp_path):
    with pytest.raises(NetscopeError, match="file not found"):
        load_image(tmp_path / "nope.png")


def test_samples_and_arrays():
    assert sample_image("chelsea").shape == (300, 451, 3)
    assert load_image("coffee").shape[2] == 3
    with pytest.raises(NetscopeError, match="unknown sample image"):
        sample_image("dog")
    with pytest.raises(NetscopeError, match="NaN"):
        to_rgb(np.full((2, 2, 3), np.nan, np.float32))


def test_save_png_round_trip(tmp_path):
    x = np.random.default_rng(0).random((6, 5, 3)).astype(np.float32)
    save_png(x, tmp_path / "o.png")
    back = load_image(tmp_path / "o.png")
    np.testing.assert_allclose(back, x, atol=1 / 255)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]



def test_pillow_limit_is_left_as_found(tmp_path):
    limit = Image.MAX_IMAGE_PIXELS
    Image.new("RGB", (4, 4)).save(tmp_path / "s.png")
    load_image(tmp_path / "s.png")
    assert Image.MAX_IMAGE_PIXELS == limit


def test_folder_given_to_load_image(tmp_path):
    with pytest.raises(NetscopeError, match="is a folder"):
        load_image(tmp_path)


def test_unique_names():
    got = expand_sources(["a/cat.png", "b/cat.png", "cat.jpg", "chelsea", "dog.png"])
    assert [n for n, _ in got] == ["cat_png", "cat_png_2", "cat_jpg", "chelsea", "dog"]
