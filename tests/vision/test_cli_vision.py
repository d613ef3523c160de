"""`netscope vision ...` end to end on the offline default model, and its error messages."""

import re

import pytest
from PIL import Image

from netscope.cli import main


def run(capsys, *argv):
    rc = main(["vision", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_layers(capsys):
    rc, out, _ = run(capsys, "layers")
    assert rc == 0
    assert "| _conv_stem " in out and "1x32x112x112" in out and "| _fc " in out


def test_predict(capsys):
    rc, out, _ = run(capsys, "predict", "chelsea", "--top", "3")
    assert rc == 0 and "Egyptian cat (285)" in out


def test_gradcam_methods_write_pngs(tmp_path, capsys):
    for method in ("gradcam", "gradcam++", "xgradcam", "layercam", "cam", "guided"):
        rc, out, _ = run(capsys, "gradcam", "chelsea", "--method", method, "--class", "tabby",
                         "--out", str(tmp_path))
        assert rc == 0 and "tabby (281)" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["chelsea_cam_tabby.png", "chelsea_gradcam++_tabby.png",
                     "chelsea_gradcam_tabby.png", "chelsea_guided_tabby.png",
                     "chelsea_layercam_tabby.png", "chelsea_xgradcam_tabby.png"]
    labelled = Image.open(tmp_path / "chelsea_gradcam_tabby.png")
    assert labelled.size[0] > 224 and labelled.size[1] > 224  # title and colour bar around it
    rc, _, _ = run(capsys, "gradcam", "chelsea", "--class", "tabby", "--bare", "--out",
                   str(tmp_path / "bare"))
    assert rc == 0 and Image.open(tmp_path / "bare" / "chelsea_gradcam_tabby.png").size == \
        (224, 224)


def test_report_one_page(tmp_path, capsys):
    rc, out, _ = run(capsys, "report", "coffee", "--one-page", "--quiet", "--out", str(tmp_path))
    assert rc == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 10
    assert "Grad-CAM: espresso" in page or "Grad-CAM: cup" in page
    assert "How faithful is this map?" in page and "(10 random maps " in page
    assert re.search(r"20 steps: (better than random maps|cannot tell|worse than random)", page)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_filters_gallery(tmp_path, capsys):
    rc, out, _ = run(capsys, "filters", "--layer", "_blocks.1", "--channels", "0-1",
                     "--steps", "3", "--size", "32", "--out", str(tmp_path))
    assert rc == 0 and "_blocks.1 channel 1: objective" in out
    assert (tmp_path / "filters_blocks.1.html").is_file()


def test_fourier_classes_gallery(tmp_path, capsys):
    rc, out, _ = run(capsys, "classes", "flamingo", "goldfish", "--param", "fourier",
                     "--steps", "3", "--size", "32", "--out", str(tmp_path))
    assert rc == 0 and "goldfish: objective +" in out
    page = (tmp_path / "classes_flamingo_goldfish.html").read_text()
    assert "decorrelated colour basis" in page and "rotate 5.0, scale-jitter 0.05" in page
    assert Image.open(tmp_path / "classes_flamingo_goldfish_goldfish.png").size == (32, 32)


@pytest.mark.parametrize("argv, message", [
    (["gradcam", "chelsea", "--layer", "_blocks.99"], "no layer named '_blocks.99'"),
    (["gradcam", "chelsea", "--layer", "_fc"], "no spatial grid"),
    (["gradcam", "chelsea", "--class", "flamingoo"], "Did you mean: 'flamingo'"),
    (["gradcam", "chelsea", "--class", "1000"], "out of range"),
    (["classes", "kitty cat"], "unknown class name 'kitty cat'"),
    (["predict"], "give at least one image"),
    (["gradcam", "chelsea", "coffee", "rocket", "--class", "tabby", "--class", "cup"],
     "2 --class values for 3 images"),
    (["gradcam", "chelsea", "--method", "eigencam", "--class", "tabby"],
     "Eigen-CAM is class-agnostic"),
    (["classes", "flamingo", "--param", "fourier", "--blur-every", "2"],
     "octaves and blur work on the pixel parametrization"),
])
def test_errors(tmp_path, capsys, argv, message):
    rc, _, err = run(capsys, *argv, "--out", str(tmp_path))
    assert rc == 2 and message in err and "Traceback" not in err


def test_bad_files(tmp_path, capsys):
    (tmp_path / "fake.png").write_text("not really a png")
    rc, _, err = run(capsys, "predict", str(tmp_path / "fake.png"))
    assert rc == 2 and "not an image file" in err
    (tmp_path / "m.pt").write_bytes(b"\x80\x04garbage")
    rc, _, err = run(capsys, "predict", "chelsea", "--model", str(tmp_path / "m.pt"))
    assert rc == 2 and "can be loaded safely" in err


def test_folder_of_images_in_small_batches(tmp_path, capsys):
    from netscope.vision.models.images import sample_image

    photos = tmp_path / "photos"
    photos.mkdir()
    for name, sample in (("cat.png", "chelsea"), ("cat.jpg", "chelsea"), ("cup.png", "coffee")):
        Image.fromarray((sample_image(sample) * 255).astype("uint8")).save(photos / name)
    (photos / "notes.txt").write_text("not a picture")
    out = tmp_path / "out"
    rc, text, _ = run(capsys, "gradcam", str(photos), "--batch-size", "2",
                      "--class", "tabby", "--class", "tabby", "--class", "cup",
                      "--out", str(out))
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "cat_jpg_gradcam_tabby.png", "cat_png_gradcam_tabby.png", "cup_gradcam_cup.png"]
    assert "cup: cup (968)" in text  # the third image's class, from the second batch


def test_folder_errors(tmp_path, capsys):
    rc, _, err = run(capsys, "predict", str(tmp_path))
    assert rc == 2 and "the folder holds no image files" in err
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "saliency", "chelsea", "--batch-size", "0")
    assert exit_.value.code == 2
    assert "expected a whole number from 1 to 4096, got '0'" in capsys.readouterr().err


def test_ascent_progress_lines(tmp_path, capsys):
    rc, _, err = run(capsys, "classes", "goldfish", "--steps", "4", "--size", "32",
                     "--out", str(tmp_path))
    assert rc == 0 and "step 4/4: mean objective" in err
    rc, _, err = run(capsys, "classes", "goldfish", "--steps", "4", "--size", "32", "--quiet",
                     "--out", str(tmp_path))
    assert rc == 0 and "step" not in err


def test_forward_pass_methods_from_the_command_line(tmp_path, capsys):
    for argv in (["gradcam", "--method", "scorecam", "--top-k", "8"],
                 ["gradcam", "--method", "ablationcam", "--top-k", "8"],
                 ["saliency", "--method", "integrated-gradients", "--steps", "4"],
                 ["saliency", "--method", "occlusion", "--window", "112", "--stride", "112"]):
        rc, out, _ = run(capsys, argv[0], "chelsea", *argv[1:], "--out", str(tmp_path))
        assert rc == 0 and "Egyptian cat (285)" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["chelsea_ablationcam_Egyptian_cat.png",
                     "chelsea_integrated-gradients_Egyptian_cat.png",
                     "chelsea_occlusion_Egyptian_cat.png", "chelsea_scorecam_Egyptian_cat.png"]
    rc, out, _ = run(capsys, "saliency", "chelsea", "--method", "integrated-gradients",
                     "--steps", "4", "--out", str(tmp_path))
    assert "completeness error" in out


def test_one_unreadable_image_is_skipped_not_fatal(tmp_path, capsys):
    """As `vision explain` does: the others are explained, the bad one is one warning line;
    per-image --class values stay with their images."""
    import numpy as np

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((20, 20, 3)) * 255)
                        .astype(np.uint8)).save(folder / f"img{i}.png")
    (folder / "img1b.jpg").write_bytes(b"not an image")  # sorts between img1 and img2
    model = ["--model", "tests.vision.tiny:tiny_gap32"]
    rc = main(["vision", "gradcam", str(folder), *model, "--batch-size", "2", "--out",
               str(tmp_path / "g"), "--class", "0", "--class", "1", "--class", "2",
               "--class", "1"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "img1b.jpg" in captured.err and "skipped" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "img2: class 1 (1)" in captured.out and "img1: class 1 (1)" in captured.out
    assert main(["vision", "evaluate", str(folder), *model, "--methods", "gradcam,random",
                 "--metrics", "deletion", "--steps", "2", "--sanity-checkpoints", "1",
                 "--quiet", "--out", str(tmp_path / "e")]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "UserWarning" not in err  # no matplotlib noise either
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    assert main(["vision", "gradcam", str(tmp_path / "bad"), *model, "--out",
                 str(tmp_path / "b")]) == 2
    assert "none of the 1 image(s) could be read" in capsys.readouterr().err


def test_report_verdict_needs_to_be_sure():
    """Beating every one of 10 random maps on both metrics is 'better'; falling among them
    is 'cannot tell' (a one-random-map verdict once called Chelsea's map bad on a 0.001
    difference); below every random map on one metric is 'worse'."""
    from netscope.vision.report import verdict

    rand = [0.40, 0.42, 0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56, 0.58]
    high = [1 - r for r in rand]
    assert verdict(0.30, rand, 0.90, high)[0] == "better"
    kind, why = verdict(0.41, rand, 0.90, high)
    assert kind == "cannot tell" and "9 of 10 random maps beaten on deletion" in why
    assert verdict(0.50, rand, 0.90, high)[0] == "cannot tell"
    assert verdict(0.60, rand, 0.90, high)[0] == "worse"
    assert verdict(0.30, rand, 0.40, high)[0] == "worse"
    assert "p 0.09" in verdict(0.30, rand, 0.90, high)[1]


def test_activations_reruns_with_other_options_write_beside(tmp_path, capsys):
    """Other drawing options name other files: a rerun never overwrites the earlier grid."""
    for extra in ([], ["--order", "strongest", "--shared-scale", "--max-channels", "8"]):
        rc, _, _ = run(capsys, "activations", "chelsea", "--layers", "_conv_stem", "--out",
                       str(tmp_path), *extra)
        assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chelsea_activations_conv_stem.png",
        "chelsea_activations_conv_stem_strongest_shared_8ch.png"]


def test_an_option_the_method_does_not_take_is_an_error_naming_it(capsys):
    """`saliency --method lrp --smooth 4` drew the same picture as without --smooth."""
    from netscope.cli import main

    assert main(["vision", "saliency", "chelsea", "--method", "lrp", "--smooth", "4"]) == 2
    assert "--smooth does not apply to LRP: it is a setting of smoothgrad" in \
        capsys.readouterr().err
    assert main(["vision", "gradcam", "chelsea", "--top-k", "8"]) == 2
    assert "--top-k does not apply to Grad-CAM" in capsys.readouterr().err


def test_report_pages_have_an_index_and_say_their_title_once(tmp_path, capsys):
    """`vision report` wrote one page per image and no index, each page repeating its
    title: an index now links every image's page (with its thumbnail and top classes),
    and each page links back."""
    rc, out, _ = run(capsys, "report", "coffee", "rocket", "--quiet", "--top", "1",
                     "--out", str(tmp_path))
    assert rc == 0 and f"open {tmp_path / 'index.html'}" in out
    index = (tmp_path / "index.html").read_text()
    for stem in ("coffee", "rocket"):
        assert f"<a href='{stem}.html'><img src='{stem}_input.png'" in index
        assert (tmp_path / f"{stem}_input.png").is_file()
        page = (tmp_path / f"{stem}.html").read_text()
        assert page.count(f">netscope: {stem}<") == 2  # the page's title and h1, no h2
        assert f"<h2>{stem}</h2>" not in page and "href='index.html'" in page
    assert "2 image(s), model <code>efficientnet-lite0</code>" in index
