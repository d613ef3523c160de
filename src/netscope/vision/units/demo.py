"""The demo's dataset, offline: the colour photos that scikit-image and scikit-learn ship,
each whole and as five crops (four corners and the centre, 60% of the short side), so a
new user sees a real atlas with no data of their own."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "colorwheel", "hubble_deep_field",
                  "immunohistochemistry", "retina", "rocket")
DEMO_LAYERS = ("_blocks.2", "_blocks.4")  # EfficientNet-Lite0: 24 and 40 units
DEMO_PICTURE_STEPS = 48  # the demo's pictures in about a minute on two CPU cores


def photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    found = {name: getattr(data, name)() for name in SKIMAGE_PHOTOS}
    sample = load_sample_images()
    for path, image in zip(sample.filenames, sample.images, strict=True):
        found[Path(path).stem] = image
    return found


def crops(image: np.ndarray) -> dict[str, np.ndarray]:
    h, w = image.shape[:2]
    c = int(min(h, w) * 0.6)
    top, left = (h - c) // 2, (w - c) // 2
    return {"whole": image, "top-left": image[:c, :c], "top-right": image[:c, -c:],
            "bottom-left": image[-c:, :c], "bottom-right": image[-c:, -c:],
            "centre": image[top:top + c, left:left + c]}


def demo_folder(dest: str | Path) -> Path:
    """Write the demo images (JPEG) into ``dest`` once; returns the folder."""
    from PIL import Image

    from netscope.files.atomic import write_atomic

    dest = Path(dest)
    for name, image in photos().items():
        for part, pixels in crops(image[..., :3]).items():
            path = dest / f"{name}-{part}.jpg"
            if not path.is_file():
                write_atomic(path, lambda p, px=pixels: Image.fromarray(px).save(p, "JPEG",
                                                                                 quality=92))
    return dest
