"""Gradient-ascent settings that give clear pictures in seconds on a CPU, per
parametrization: the command line's defaults (see BENCHMARKS.md, "Picture quality").
Free of heavy imports, so the command line can show them in its help instantly.

    AscentConfig(param="fourier", **PRESETS["fourier"])
"""

PRESETS: dict[str, dict[str, float]] = {
    "pixel": dict(steps=40, lr=0.1, jitter=4, blur_every=4, rotate=0.0, scale_jitter=0.0),
    "fourier": dict(steps=100, lr=0.03, jitter=4, blur_every=0, rotate=5.0, scale_jitter=0.05),
    "phase": dict(steps=100, lr=0.1, jitter=4, blur_every=0, rotate=5.0, scale_jitter=0.05),
}
