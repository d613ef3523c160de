"""How good are the pictures? Class visualizations with the pixel and the Fourier
parametrization (each with the command line's defaults, 224 px), scored by what the model
itself says about them:

- p(class): the softmax probability of the target class on the finished picture;
- p(class) under transforms: its mean over 16 random shifts (up to 16 px), rotations (up to
  15 degrees) and rescalings (0.9-1.1) of the picture; adversarial noise collapses under
  these, real features survive;
- high-frequency share: the fraction of the picture's spectral power above a quarter of the
  Nyquist frequency (natural photos: a few percent; noise: most of it).

    python benchmarks/bench_pictures.py [--classes flamingo,goldfish,...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from netscope.perf import configure
from netscope.vision.features import augment
from netscope.vision.features.ascent import AscentConfig, visualize_classes
from netscope.vision.features.presets import PRESETS
from netscope.vision.models.classes import resolve_class
from netscope.vision.models.images import SAMPLES, sample_image
from netscope.vision.models.zoo import load_model


def high_frequency_share(images: torch.Tensor) -> torch.Tensor:
    """Per image: spectral power beyond 1/4 of Nyquist over all power (mean removed)."""
    grey = images.mean(1)
    grey = grey - grey.mean((1, 2), keepdim=True)
    power = torch.fft.rfft2(grey).abs() ** 2
    fy = torch.fft.fftfreq(grey.shape[1])[:, None]
    fx = torch.fft.rfftfreq(grey.shape[2])[None, :]
    high = torch.sqrt(fx**2 + fy**2) > 0.125
    return (power * high).sum((1, 2)) / power.sum((1, 2))


def robust_probability(model, pre, images: torch.Tensor, classes: list[int]) -> torch.Tensor:
    idx = torch.arange(len(classes)), torch.tensor(classes)
    probs = []
    with torch.no_grad():
        for seed in range(16):
            d = augment.draw(10_000 + seed, 16, 15.0, 0.1)
            x = augment.apply(pre.normalize(images), d)
            probs.append(model(x).softmax(1)[idx])
    return torch.stack(probs).mean(0)


def main() -> None:
    print(configure(), flush=True)  # as the netscope command does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", default="flamingo,goldfish,volcano,Egyptian cat,"
                        "espresso,space shuttle,pizza,zebra")
    args = parser.parse_args()
    lm = load_model()
    names = args.classes.split(",")
    classes = [resolve_class(n, lm.class_names, 1000) for n in names]
    photos = torch.stack([torch.from_numpy(lm.preprocess.image(sample_image(s))).permute(2, 0, 1)
                          for s in SAMPLES])
    print(f"{len(classes)} classes ({', '.join(names)}), 224 px, EfficientNet-Lite0")
    print(f"high-frequency share of the bundled photos: "
          f"{statistics.mean(high_frequency_share(photos).tolist()):.1%}")
    print("param     seconds  p(class)  p(class) under transforms  high-frequency share")
    for param, defaults in PRESETS.items():
        cfg = AscentConfig(size=224, param=param, l2=1e-3, **defaults)
        start = time.perf_counter()
        res = visualize_classes(lm.model, classes, lm.preprocess, cfg)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            p = lm.model(lm.preprocess.normalize(res.images)).softmax(1)[
                torch.arange(len(classes)), torch.tensor(classes)]
        robust = robust_probability(lm.model, lm.preprocess, res.images, classes)
        hf = high_frequency_share(res.images)
        print(f"{param:8s} {seconds:8.1f}  {p.mean():8.3f}  {robust.mean():25.3f}  "
              f"{hf.mean():19.1%}")


if __name__ == "__main__":
    main()
