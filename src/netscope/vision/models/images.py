"""Reading images into RGB float arrays, whatever the file holds.

Grayscale is repeated to three channels, alpha is composited over white, 16-bit and float
images are scaled to [0, 1], a photo's EXIF orientation is applied (phones store portraits
sideways), and very large images are reduced on load (the model sees 224 pixels anyway) so
a 100-megapixel photo never exhausts memory. A file that would decode to more than
``pixel_limit()`` pixels (after JPEG's reduced decoding) is refused before it is decoded:
a 39000x39000 PNG of a few bytes would otherwise take 1.4 GB.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from netscope.errors import NetscopeError

MAX_SIDE = 4096  # larger images are reduced on load
MAX_PIXELS = 100_000_000  # default limit on decoded pixels; NETSCOPE_MAX_PIXELS changes it
SAMPLES = ("chelsea", "coffee", "astronaut", "rocket")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm")


def image_files(folder: Path) -> list[Path]:
    """The image files in a folder, in name order; a clear error when there are none."""
    found = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise NetscopeError(f"{folder}: the folder holds no image files "
                            f"({', '.join(IMAGE_SUFFIXES)}).")
    return found


def expand_sources(names: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """(display name, source) for each image: files and sample names as given, folders as
    their image files in name order. Display names are file stems, made unique (``cat.jpg``
    and ``cat.png`` become ``cat_jpg`` and ``cat_png``) so outputs never overwrite each
    other."""
    sources: list[str] = []
    for name in names:
        path = Path(name)
        sources += [str(p) for p in image_files(path)] if path.is_dir() else [str(name)]
    stems = [Path(s).stem if Path(s).suffix else s for s in sources]
    counts = Counter(stems)
    out, seen = [], set()
    for src, stem in zip(sources, stems, strict=True):
        name = stem if counts[stem] == 1 else f"{stem}_{Path(src).suffix.lstrip('.')}"
        base, k = name, 2
        while name in seen:  # the same file twice, or stems equal after the suffix too
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append((name, src))
    return out


def to_rgb(array: np.ndarray, where: str = "image") -> np.ndarray:
    """Any 2-D/3-D image array -> float32 RGB (H, W, 3) in [0, 1]."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or min(a.shape[:2]) < 1:
        raise NetscopeError(
            f"{where}: expected an image (H x W [x channels]), got shape {a.shape}."
        )
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        x = a.astype(np.float32) / 65535.0
    elif a.dtype == bool:
        x = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        x = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    else:
        x = a.astype(np.float32)
        if not np.isfinite(x).all():
            raise NetscopeError(f"{where}: the image holds NaN or infinite values.")
        if x.max() > 1.0:
            x = x / 255.0 if x.max() <= 255.0 else (x - x.min()) / max(np.ptp(x), 1e-12)
    x = np.clip(x, 0.0, 1.0)
    if x.shape[2] in (2, 4):  # composite alpha over white
        alpha = x[..., -1:]
        x = x[..., :-1] * alpha + (1.0 - alpha)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file (or a sample name such as 'chelsea') as RGB float32 in [0, 1]."""
    if str(path) in SAMPLES and not Path(path).exists():
        return sample_image(str(path))
    path = Path(path)
    if path.is_dir():
        raise NetscopeError(f"{path}: is a folder; give image files (the command line "
                            f"takes folders and reads the images inside).")
    if not path.is_file():
        raise NetscopeError(f"{path}: file not found.")
    most = pixel_limit()
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # checked below, after draft
    try:
        with Image.open(path) as im:
            im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode reduced when huge
            w, h = im.size
            if w * h > most:
                raise NetscopeError(
                    f"{path}: the image declares {w}x{h} = {w * h:,} pixels, above the limit "
                    f"of {most:,} (a decompression bomb, or a huge scan); reduce it first, or "
                    f"raise the limit with NETSCOPE_MAX_PIXELS.")
            if max(im.size) > MAX_SIDE:
                im.thumbnail((MAX_SIDE, MAX_SIDE))
            arr = _pil_to_array(ImageOps.exif_transpose(im))
    except UnidentifiedImageError:
        raise NetscopeError(f"{path}: not an image file that Pillow can read.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise NetscopeError(f"{path}: cannot read the image ({exc}).") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return to_rgb(arr, str(path))


def pixel_limit() -> int:
    """Most pixels an image may decode to: $NETSCOPE_MAX_PIXELS, else MAX_PIXELS."""
    import os

    text = os.environ.get("NETSCOPE_MAX_PIXELS", "").strip().replace("_", "")
    if not text:
        return MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise NetscopeError(f"NETSCOPE_MAX_PIXELS must be a whole number of pixels >= 1, got "
                            f"{text[:40]!r}.")
    return int(text)


def _pil_to_array(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16)
    if im.mode == "I":
        return np.asarray(im, dtype=np.int32).clip(0, 65535).astype(np.uint16)
    if im.mode == "F":
        return np.asarray(im, dtype=np.float32)
    if im.mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    return np.asarray(im)


def sample_image(name: str, pil: bool = False) -> np.ndarray | Image.Image:
    """One of scikit-image's bundled photos: chelsea, coffee, astronaut, rocket, as an RGB
    float array in [0, 1] (what netscope's functions take), or with ``pil`` as a PIL image
    (what ``PIL.Image`` code and ``save`` take)."""
    if name not in SAMPLES:
        raise NetscopeError(f"unknown sample image {name!r}; choose from {', '.join(SAMPLES)}.")
    from skimage import data

    raw = getattr(data, name)()
    if pil:
        return Image.fromarray(raw).convert("RGB")
    return to_rgb(raw, name)


def save_samples(folder: str | Path) -> list[Path]:
    """The sample photos as JPEG files in ``folder``/photos, and chelsea as ``my.jpg``: the
    files the README's tour names."""
    import io

    from netscope.files.atomic import write_bytes

    written = []
    for name in SAMPLES:
        buffer = io.BytesIO()
        sample_image(name, pil=True).save(buffer, "JPEG", quality=92)
        written.append(write_bytes(Path(folder) / "photos" / f"{name}.jpg", buffer.getvalue()))
        if name == "chelsea":
            written.append(write_bytes(Path(folder) / "my.jpg", buffer.getvalue()))
    return written


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB float image to (height, width) with bilinear filtering."""
    h, w = size
    channels = [Image.fromarray(image[..., c]).resize((w, h), Image.BILINEAR)
                for c in range(image.shape[2])]
    return np.stack([np.asarray(c) for c in channels], axis=-1)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB float image atomically as PNG."""
    from netscope.files.atomic import write_atomic

    arr = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return write_atomic(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))
