"""The method registry: every method through one call, its settings as the function's own
keywords, and every command's choices read from it."""

import argparse
import inspect
import subprocess
import sys

import pytest
import torch

from netscope.cli import build_parser
from netscope.errors import NetscopeError
from netscope.vision import explain
from netscope.vision.core.batched import BATCH
from netscope.vision.live.view import CAM_METHODS
from netscope.vision.methods import registry
from netscope.vision.methods.registry import METHODS, TUNNEL, names
from tests.vision.tiny import TinyGAP, image
from tests.vision.tiny_transformers import tiny_vit

SMALL = {"scorecam": {"top_k": 3}, "ablationcam": {"top_k": 3}, "smoothgrad": {"samples": 2},
         "integrated-gradients": {"steps": 3}, "occlusion": {"window": 3, "stride": 1},
         "shapley-sampling": {"samples": 2}, "kernel-shap": {"samples": 24, "cells": 8},
         "lime": {"samples": 24, "cells": 8, "lasso_alpha": 1e-6}, "gradient-shap": {"samples": 2},
         "layer-conductance": {"steps": 3}, "neuron-conductance": {"steps": 3}}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_through_explain(name):
    m = METHODS[name]
    vit = "attention" in " ".join(m.needs)
    model = tiny_vit() if vit else TinyGAP()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) if vit \
        else image(2, size=8)
    heat = explain(name, model, x, None if not m.class_specific else [0, 2],
                   **SMALL.get(name, {}))
    grid = {"layer": (2, 8, 8), "input": tuple(x[:, 0].shape)}  # TinyGAP keeps 8x8
    expected = (2, 8, 8) if vit else (2, 14, 14) if name == "random" else grid[m.resolution]
    assert tuple(heat.maps.shape) == expected
    assert torch.isfinite(heat.maps).all() and heat.maps.min() >= 0 and heat.maps.max() <= 1
    assert heat.classes.shape == (2,) and heat.method == name
    if m.class_specific and name != "random":
        assert heat.classes.tolist() == [0, 2] and heat.target is not None
    if name != "random":  # each map scaled to a maximum of 1 (an all-zero map stays zero)
        assert set(heat.maps.amax((1, 2)).tolist()) <= {0.0, 1.0} and heat.maps.max() == 1


@pytest.mark.parametrize("name", list(METHODS))
def test_settings_are_the_functions_keyword_only_options(name):
    m = METHODS[name]
    params = inspect.signature(m.implementation()).parameters
    assert list(params)[:3] == ["model", "x", "targets"]
    assert params["targets"].default is None
    for s in m.settings:
        if s in TUNNEL:  # the registry runs the noise tunnel around the function
            assert s.name not in params
            continue
        assert params[s.name].kind is inspect.Parameter.KEYWORD_ONLY, s.name
        if name != "smoothgrad":  # SmoothGrad is saliency with samples > 0
            assert params[s.name].default == s.default, s.name
    for key, _ in m.fixed:
        assert params[key].kind is inspect.Parameter.KEYWORD_ONLY


def test_bad_names_and_settings_are_clear():
    model, x = TinyGAP(), image()
    with pytest.raises(NetscopeError, match="unknown method 'gradcamm'; choose from gradcam"):
        explain("gradcamm", model, x)
    with pytest.raises(NetscopeError, match="gradcam has no setting 'eps'; it takes layer"):
        explain("gradcam", model, x, eps=1e-6)
    with pytest.raises(NetscopeError, match="normalize must be one of max, minmax, got 'sum'"):
        explain("gradcam", model, x, normalize="sum")
    with pytest.raises(NetscopeError, match="no method list 'cli'"):
        names("cli")


def _choices(argv: list[str], dest: str) -> list[str]:
    parser = build_parser()
    for word in argv:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    action = next(a for a in parser._actions if a.dest == dest)
    return list(action.choices)


def test_every_command_lists_the_registry():
    assert _choices(["vision", "gradcam"], "method") == list(names("gradcam"))
    assert _choices(["vision", "saliency"], "method") == list(names("saliency"))
    assert _choices(["vision", "explain"], "method") == list(names("dataset"))
    assert _choices(["live"], "method") == list(names("live")) == list(CAM_METHODS)
    registered = set(names("gradcam")) | set(names("saliency")) | {"random"}
    assert registered == set(METHODS)  # every method reachable from a single-method command
    from netscope.vision.evaluation import resolve_methods

    sampled = {"gradient-shap", "layer-conductance", "neuron-conductance", "shapley-sampling",
               "kernel-shap", "lime", "sscam", "iscam"}  # hundreds of passes per image:
    # asked for by name
    assert resolve_methods("all") == list(names("all")) == \
        [n for n in METHODS if n not in ("rollout", "legrad") and n not in sampled]
    helps = build_parser().format_help()
    assert "vision" in helps


def test_registry_needs_no_pytorch():
    code = ("import sys, netscope.vision.methods.registry as r; "
            "print(len(r.METHODS), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(len(METHODS)), "False"]
    assert registry.BATCH == BATCH  # the light copy of the batch size agrees
