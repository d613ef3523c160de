"""A method's settings are declared once, as the registry's ``Setting``s: every command that
offers the method has an option for each of them with the same default, values reach the
method, and a method added by one declaration appears on the command line, in --help and in
`vision evaluate`."""

import argparse

import numpy as np
import pytest
import torch

from netscope.cli import _leaves, build_parser, main
from netscope.cli.method_options import method_settings
from netscope.errors import NetscopeError
from netscope.vision.evaluation import EvalSettings, evaluate
from netscope.vision.methods.registry import METHODS, Method, Setting, names
from netscope.vision.metrics.choices import BULK_DEFAULTS
from netscope.vision.models.zoo import LoadedModel, Preprocess
from tests.vision.tiny import TinyGAP

COMMANDS = {  # prog suffix -> (the methods it offers, its overrides, arguments it needs)
    "vision gradcam": (names("gradcam"), {}, []),
    "vision saliency": (names("saliency"), {}, []),
    "vision evaluate": (names(), BULK_DEFAULTS, []),
    "vision explain": (names("dataset"), BULK_DEFAULTS, ["folder"]),
    "live": (names("live"), {}, []),
}


def _parser(suffix: str) -> argparse.ArgumentParser:
    return next(p for p in _leaves(build_parser()) if p.prog.endswith(suffix))


def _option(parser, name: str) -> argparse.Action:
    dests = parser.get_default("_method_options")
    dest = next(d for d, n in dests.items() if n == name)
    return next(a for a in parser._actions if a.dest == dest)


def _other_value(s: Setting):
    """A valid value that is not the default."""
    if s.cast is bool:
        return not s.default
    if s.choices is not None:
        if s.many:
            return (s.choices[0],)
        return next(c for c in reversed(s.choices) if c != s.default)
    if s.cast is int:
        return int(s.lo or 0) + 1 if s.default != int(s.lo or 0) + 1 else int(s.lo or 0) + 2
    if s.cast is float:
        return 0.5 if s.default != 0.5 else 0.25
    return "some.layer"


def _text(s: Setting, value) -> list[str]:
    if s.cast is bool:
        return []
    return [",".join(value) if s.many else str(value)]


@pytest.mark.parametrize("suffix", list(COMMANDS))
def test_every_setting_appears_on_every_command_that_offers_the_method(suffix):
    offered, overrides, needs = COMMANDS[suffix]
    parser = _parser(suffix)
    blank = parser.parse_args(needs)
    for name in offered:
        m = METHODS[name]
        for s in m.settings:
            if not s.on_command_line:
                continue
            action = _option(parser, s.name)
            if s.name in parser.get_default("_method_shared"):  # images per pass
                assert action.default == s.default, (suffix, name, s.name)
                continue
            assert action.default is None  # not given: the method's own default
            shown = ",".join(s.default) if s.many else s.default
            if s.name in overrides:
                assert f"default here: {overrides[s.name]}" in action.help
            elif "default" not in s.help and isinstance(shown, str):
                assert f"default: {shown}" in action.help, (suffix, name, s.name)
            # nothing given: the method runs on its registry defaults (or the override)
            expected = {**m.defaults(), **m.accepted(overrides)}
            assert {**m.defaults(), **method_settings(blank, m)} == expected
            # a value given reaches the method as that setting
            value = _other_value(s)
            args = parser.parse_args([*needs, action.option_strings[0], *_text(s, value)])
            assert method_settings(args, m)[s.name] == value, (suffix, name, s.name)
            m.check(method_settings(args, m))


def test_settings_of_one_name_parse_alike():
    """A flag serves every method with a setting of that name: their types, ranges and
    choices agree."""
    seen: dict[str, Setting] = {}
    for m in METHODS.values():
        for s in m.settings:
            first = seen.setdefault(s.name, s)
            assert (s.cast, s.choices, s.lo, s.hi, s.many, s.off) == \
                (first.cast, first.choices, first.lo, first.hi, first.many, first.off), s.name


def test_values_are_checked_where_the_method_is_called():
    """Python callers get the command line's ranges, from the same declaration."""
    model, x = TinyGAP(), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    m = METHODS["integrated-gradients"]
    with pytest.raises(NetscopeError, match="steps must be a whole number >= 1 and <= 10000, "
                                            "got 0"):
        m(model, x, steps=0)
    with pytest.raises(NetscopeError, match="noise must be a number >= 0"):
        METHODS["smoothgrad"](model, x, noise=float("nan"))
    with pytest.raises(NetscopeError, match="centre must be True or False"):
        METHODS["eigencam"](model, x, centre="yes")
    with pytest.raises(NetscopeError, match="baselines must be some of zeros, blur, mean"):
        METHODS["deeplift-shap"](model, x, baselines=("zeros", "noise"))
    assert METHODS["scorecam"](model, x, top_k=0).maps.shape[0] == 1  # 0: all channels


def test_smoothgrad_runs_on_its_own_default():
    """explain('smoothgrad') without settings is SmoothGrad with 16 samples, not plain
    saliency (the function's default)."""
    model, x = TinyGAP(), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    plain = METHODS["saliency"](model, x).maps
    smooth = METHODS["smoothgrad"](model, x).maps
    assert not torch.allclose(plain, smooth)
    assert torch.allclose(smooth, METHODS["smoothgrad"](model, x, samples=16).maps)


def test_options_a_method_does_not_read_are_refused(capsys):
    assert main(["vision", "gradcam", "chelsea", "--method", "gradcam", "--top-k", "3"]) == 2
    assert "--top-k does not apply to Grad-CAM: it is a setting of scorecam, sscam, iscam, " \
        in capsys.readouterr().err
    assert main(["vision", "evaluate", "chelsea", "--methods", "gradcam,saliency",
                 "--window", "8"]) == 2
    assert "--window does not apply to the chosen methods: it is a setting of occlusion" \
        in capsys.readouterr().err
    # evaluate's own --steps (deletion) keeps its name; the methods' is --method-steps
    parser = _parser("vision evaluate")
    args = parser.parse_args(["--steps", "7", "--method-steps", "9"])
    assert args.steps == 7
    assert method_settings(args, METHODS["integrated-gradients"])["steps"] == 9


def doubled(model, x, targets=None, *, gain: float = 2.0):
    """A method declared in a test: saliency times ``gain``."""
    from netscope.vision.methods.gradients import saliency

    heat = saliency(model, x, targets)
    heat.extras["gain"] = gain
    return heat


def test_a_method_added_by_one_declaration_is_everywhere(monkeypatch, tmp_path, capsys):
    added = Method("doubled", "doubled saliency", "saliency, declared in a test",
                   "tests.vision.test_method_options:doubled",
                   (Setting("gain", 2.0, "what the map is multiplied by", cast=float, lo=0,
                            hi=10),), resolution="input", command="saliency")
    monkeypatch.setitem(METHODS, "doubled", added)
    parser = _parser("vision saliency")
    assert "doubled" in next(a for a in parser._actions if a.dest == "method").choices
    text = parser.format_help()
    assert "--gain GAIN" in text and "what the map is multiplied by (default: 2; doubled)" \
        in " ".join(text.split())
    assert "doubled" in " ".join(_parser("vision evaluate").format_help().split())
    out = tmp_path / "s"
    assert main(["vision", "saliency", "chelsea", "--model", "tests.vision.tiny:tiny_fcn",
                 "--method", "doubled", "--gain", "3", "--out", str(out)]) == 0
    assert len(list(out.glob("*doubled*.png"))) == 1
    assert main(["vision", "saliency", "chelsea", "--method", "saliency", "--gain", "3"]) == 2
    assert "--gain does not apply to saliency: it is a setting of doubled" in \
        capsys.readouterr().err
    lm = LoadedModel("tiny", TinyGAP(dtype=torch.float32), Preprocess(8), None)
    rgb = np.random.default_rng(0).random((12, 12, 3)).astype(np.float32)
    ev = evaluate(lm, [("a", rgb)], ["doubled", "saliency"],
                  EvalSettings(metrics=("deletion",), metric_settings={"steps": 3},
                               method_settings={"gain": 3.0}))
    assert [r.method for r in ev.results] == ["doubled", "saliency"]
    assert ev.results[0].settings == {"gain": 3.0}
    from netscope.render.evaluation import text_report, write_evaluation

    assert "doubled" in text_report(ev)
    write_evaluation(ev, tmp_path / "ev")  # the report names it and the settings it ran with
    report = (tmp_path / "ev" / "report.html").read_text()
    assert "doubled" in report and "gain" in report


def test_methods_work_under_a_callers_no_grad():
    """Captum's metrics call explanation functions inside torch.no_grad()."""
    model, x = TinyGAP(), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        inside = METHODS["saliency"](model, x).maps
    torch.testing.assert_close(inside, METHODS["saliency"](model, x).maps)
