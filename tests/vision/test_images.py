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


def _declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels, with almost no data after it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_a_declared_pixel_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    """39000 x 39000 declared in 4 rows of data: refused with the limit named, before the
    1.4 GB decode; the limit is configurable, and a bad setting is named."""
    import resource

    (tmp_path / "bomb.png").write_bytes(_declared_png(39000, 39000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(NetscopeError, match=r"39000x39000 = 1,521,000,000 pixels, above the "
                                            r"limit of 100,000,000 .*NETSCOPE_MAX_PIXELS"):
        load_image(tmp_path / "bomb.png")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
    Image.new("RGB", (300, 200)).save(tmp_path / "small.png")
    monkeypatch.setenv("NETSCOPE_MAX_PIXELS", "50000")
    with pytest.raises(NetscopeError, match="300x200 = 60,000 pixels, above the limit of "
                                            "50,000"):
        load_image(tmp_path / "small.png")
    monkeypatch.setenv("NETSCOPE_MAX_PIXELS", "lots")
    with pytest.raises(NetscopeError, match="NETSCOPE_MAX_PIXELS must be a whole number"):
        load_image(tmp_path / "small.png")


def test_exif_orientation_is_applied(tmp_path):
    """A phone portrait stored sideways (EXIF orientation 6: rotate 90 degrees clockwise
    to view) is read upright: a red band at the top, stored at the left."""
    stored = np.zeros((40, 60, 3), np.uint8)  # 60 wide as stored
    stored[:, :8] = (255, 0, 0)  # the left columns are the picture's top rows
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    x = load_image(tmp_path / "phone.jpg")
    assert x.shape == (60, 40, 3)
    assert x[2, :, 0].mean() > 0.8 and x[2, :, 1].mean() < 0.2 and x[-3].max() < 0.2
