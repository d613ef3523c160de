"""How gradient ascent describes the picture it optimizes.

``pixel``: the normalized input itself (the course's and Simonyan et al.'s way). Simple and
exact, but high frequencies grow fastest, so pictures turn into noise unless blurred.

``fourier``: the picture's 2-D Fourier coefficients in a decorrelated colour basis, each
frequency scaled by 1/frequency, then squashed into [0, 1] with a sigmoid (Olah, Mordvintsev
and Schubert, "Feature Visualization", Distill 2017). A normalized-gradient step then changes
every spatial frequency and every colour direction by a like amount, as in natural photos,
so the pictures look far less noisy and keep natural colours.

``phase``: only the Fourier phases are optimized; the amplitude of every frequency and
colour channel is fixed to the mean amplitude spectrum of a set of real images (MaCo, Fel
et al. 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude
Constrained Optimization"). The picture then has the spectrum of those images (the unit
atlas passes its own dataset's), which keeps deep units' pictures from drifting into
high-frequency patterns no photo has.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from netscope.errors import NetscopeError
from netscope.vision.models.zoo import Preprocess

PARAMETRIZATIONS = ("pixel", "fourier", "phase")


@functools.cache
def colour_basis() -> np.ndarray:
    """3x3 matrix M with M @ M.T proportional to the RGB covariance of the bundled sample
    photos: a unit step in each column is one principal colour direction (brightness first,
    then two opponent colours) scaled by its spread in natural images."""
    from netscope.vision.models.images import SAMPLES, sample_image

    pixels = np.concatenate([sample_image(s)[::4, ::4].reshape(-1, 3) for s in SAMPLES])
    u, s, _ = np.linalg.svd(np.cov(pixels.T.astype(np.float64)))
    m = u * np.sqrt(s)
    m *= np.sign(m[np.abs(m).argmax(0), range(3)])  # fix the SVD's arbitrary signs
    return m / np.linalg.norm(m, axis=1).max()


def _spectrum_scale(size: int, dtype: torch.dtype) -> torch.Tensor:
    """1 / frequency (capped at the lowest frequency), with unit root-mean-square."""
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
    scale = 1.0 / torch.sqrt(fx**2 + fy**2).clamp(min=1.0 / size)
    return (scale / scale.pow(2).mean().sqrt()).to(dtype)


class ImageParam:
    """Parameters of a batch of pictures, and how to turn them into the model's input."""

    name = "pixel"

    def __init__(self, pre: Preprocess, size: int, dtype: torch.dtype,
                 device: torch.device | str = "cpu") -> None:
        self.pre, self.size, self.dtype, self.device = pre, size, dtype, torch.device(device)

    def init(self, seeds: Sequence[int], noise: float) -> torch.Tensor:
        """Grey plus seeded noise per image, as normalized input."""
        imgs = [0.5 + noise * torch.randn(3, self.size, self.size,
                                          generator=torch.Generator().manual_seed(s))
                for s in seeds]
        return self.pre.normalize(torch.stack(imgs).clamp(0, 1).to(self.device, self.dtype))

    def to_input(self, params: torch.Tensor) -> torch.Tensor:
        """The normalized model input the parameters describe (differentiable)."""
        return params

    def to_image(self, params: torch.Tensor) -> torch.Tensor:
        """Pictures in [0, 1]."""
        return self.pre.denormalize(self.to_input(params)).clamp(0, 1)

    def project(self, params: torch.Tensor) -> torch.Tensor:
        """Keep the parameters a valid picture after a step."""
        lo = self.pre.normalize(torch.zeros(1, 3, 1, 1, dtype=params.dtype,
                                            device=params.device))
        hi = self.pre.normalize(torch.ones(1, 3, 1, 1, dtype=params.dtype,
                                           device=params.device))
        return torch.maximum(torch.minimum(params, hi), lo)


class FourierParam(ImageParam):
    """Scaled Fourier coefficients in a decorrelated colour basis; see the module docstring."""

    name = "fourier"

    def __init__(self, pre: Preprocess, size: int, dtype: torch.dtype,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(pre, size, dtype, device)
        # broadcast over (re, im)
        self.scale = _spectrum_scale(size, dtype)[..., None].to(self.device)
        self.colour = torch.from_numpy(colour_basis()).to(self.device, dtype)

    def init(self, seeds: Sequence[int], noise: float) -> torch.Tensor:
        """Small seeded coefficients: a nearly grey start (``noise`` scaled down tenfold)."""
        shape = (3, self.size, self.size // 2 + 1, 2)
        return torch.stack([0.1 * noise * torch.randn(shape, generator=torch.Generator()
                                                      .manual_seed(s)) for s in seeds]
                           ).to(self.device, self.dtype)

    def to_input(self, params: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex((params * self.scale).contiguous())
        decorrelated = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        rgb = torch.einsum("ij,njhw->nihw", self.colour, decorrelated)
        return self.pre.normalize(torch.sigmoid(rgb))

    def project(self, params: torch.Tensor) -> torch.Tensor:
        return params  # the sigmoid keeps every picture valid


class PhaseParam(ImageParam):
    """Fourier phases under a fixed amplitude spectrum; see the module docstring."""

    name = "phase"

    def __init__(self, pre: Preprocess, size: int, dtype: torch.dtype,
                 device: torch.device | str = "cpu",
                 spectrum: np.ndarray | None = None) -> None:
        super().__init__(pre, size, dtype, device)
        expected = (3, size, size // 2 + 1)
        if spectrum is None or tuple(np.shape(spectrum)) != expected:
            got = "none" if spectrum is None else f"shape {tuple(np.shape(spectrum))}"
            raise NetscopeError(f"the phase parametrization needs the images' amplitude "
                                f"spectrum of shape {expected} (the atlas's own, at picture "
                                f"size {size}); got {got}.")
        self.amplitude = torch.as_tensor(np.asarray(spectrum), dtype=dtype).to(self.device)
        keep = torch.ones(expected[1:], dtype=dtype)
        keep[0, 0] = 0  # the mean colour keeps phase 0, so the picture stays positive
        self.keep = keep.to(self.device)

    def init(self, seeds: Sequence[int], noise: float) -> torch.Tensor:
        """Uniform random phases, one seeded draw per picture."""
        shape = (3, self.size, self.size // 2 + 1)
        return torch.stack([(torch.rand(shape, generator=torch.Generator().manual_seed(s))
                             * 2 - 1) * np.pi for s in seeds]).to(self.device, self.dtype)

    def to_input(self, params: torch.Tensor) -> torch.Tensor:
        phase = params * self.keep
        spectrum = torch.polar(self.amplitude.expand_as(phase), phase)
        pixels = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        return self.pre.normalize(pixels)

    def project(self, params: torch.Tensor) -> torch.Tensor:
        return params  # every phase is valid; the amplitude never changes


def image_param(name: str, pre: Preprocess, size: int, dtype: torch.dtype,
                device: torch.device | str = "cpu",
                spectrum: np.ndarray | None = None) -> ImageParam:
    """The parametrization ``name``; ``phase`` needs the amplitude ``spectrum``."""
    kinds = {"pixel": ImageParam, "fourier": FourierParam}
    if name == "phase":
        return PhaseParam(pre, size, dtype, device, spectrum)
    if name not in kinds:
        raise NetscopeError(f"unknown parametrization {name!r}: use one of "
                            f"{', '.join(PARAMETRIZATIONS)}.")
    return kinds[name](pre, size, dtype, device)
