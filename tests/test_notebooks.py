"""The course's two demonstrations as a student runs them: the notebooks under
docs/notebooks executed in a real Jupyter kernel (nbclient), each result checked for the
output a notebook shows (HTML, a picture, a short text), and one executed notebook rendered
to HTML (nbconvert) in headless Chromium, where netscope's output must keep the page's own
layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "docs" / "notebooks"

# cell index -> the mime types its output must include
EXPECTED = {
    "multitask_school.ipynb": {1: {"text/html", "text/plain"}, 3: {"text/html"},
                               5: {"stream"}, 6: {"text/plain"}, 8: {"text/html"}},
    "vision_cnn.ipynb": {1: {"text/html"}, 3: {"text/html", "image/png"},
                         5: {"image/png"}, 7: {"text/html", "image/png"},
                         8: {"image/png"}, 10: {"image/png"}, 12: {"text/html"}},
}


def _execute(name: str, data_root: Path):
    nbformat = pytest.importorskip("nbformat", reason="the dev extra (nbformat)")
    nbclient = pytest.importorskip("nbclient", reason="the dev extra (nbclient)")
    pytest.importorskip("ipykernel", reason="the dev extra (ipykernel)")
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    os.environ.setdefault("NETSCOPE_DATA", str(data_root))
    nbclient.NotebookClient(book, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return book


def _kinds(cell) -> set[str]:
    kinds = set()
    for out in cell.get("outputs", []):
        assert out["output_type"] != "error", "".join(out.get("traceback", []))
        if out["output_type"] == "stream":
            assert out["name"] == "stdout", out["text"]  # no warnings on stderr
            kinds.add("stream")
        kinds |= set(out.get("data", {}))
    return kinds


@pytest.fixture(scope="module")
def executed(data_root):
    return {name: _execute(name, data_root) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_outputs(executed, name):
    book = executed[name]
    for index, kinds in EXPECTED[name].items():
        got = _kinds(book.cells[index])
        assert kinds <= got, f"{name} cell {index}: {sorted(got)}"
    if name == "multitask_school.ipynb":  # the prose states the protocol it prints
        printed = book.cells[3].outputs[0]["data"]["text/html"]
        prose = "".join(book.cells[2].source)
        assert "random 60%/40% train/test split" in printed and "ALL rows" in printed
        assert "60%" in prose and "40%" in prose and "over all rows" in prose
    if name == "vision_cnn.ipynb":  # random maps are the floor, never the answer
        verdict = book.cells[12].outputs[0]["data"]["text/html"]
        assert "Most faithful here: gradcam" in verdict and "ahead of the random maps" in \
            verdict, verdict[:500]
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        _kinds(cell)  # no errors anywhere
        for out in cell.outputs:
            text = out.get("data", {}).get("text/plain", "")
            assert len(text) < 3000, f"{name}: a text form of {len(text)} characters"
            page = out.get("data", {}).get("text/html", "")
            assert "<!doctype" not in page.lower() and "<body" not in page


def test_a_rendered_notebook_keeps_its_layout(executed, tmp_path):
    """nbconvert's page with netscope's outputs, in headless Chromium: removing netscope's
    style elements changes nothing outside its outputs (the page's body, its markdown and
    its own tables look the same), and every picture fits its cell."""
    from tests.live.test_browser import _browser

    nbconvert = pytest.importorskip("nbconvert", reason="the dev extra (nbconvert)")
    body, _ = nbconvert.HTMLExporter(template_name="lab").from_notebook_node(
        executed["multitask_school.ipynb"])
    page = tmp_path / "school.html"
    page.write_text(body, encoding="utf-8")
    driver = _browser(tmp_path)
    try:
        driver.set_window_size(1000, 900)
        driver.get(page.as_uri())
        measure = """
        const pick = [document.body, ...document.querySelectorAll('.jp-MarkdownOutput p'),
                      ...document.querySelectorAll('.jp-InputArea')].slice(0, 12);
        return pick.map(e => { const s = getComputedStyle(e), r = e.getBoundingClientRect();
          return [e.tagName, s.maxWidth, s.marginLeft, s.fontFamily, s.fontSize,
                  Math.round(r.width)].join('|'); });"""
        with_ours = driver.execute_script(measure)
        fits = driver.execute_script("""
        return [...document.querySelectorAll('.netscope-out img')].map(img => {
          const cell = img.closest('.jp-OutputArea-output') || img.parentElement;
          return img.getBoundingClientRect().width <= cell.getBoundingClientRect().width + 1;
        });""")
        driver.save_screenshot(str(tmp_path / "school.png"))
        driver.execute_script("document.querySelectorAll('.netscope-out style')"
                              ".forEach(s => s.remove());")
        without = driver.execute_script(measure)
    finally:
        driver.quit()
    assert len(with_ours) >= 4 and with_ours == without
    assert fits and all(fits)
