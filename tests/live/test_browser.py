"""The live page in a real browser: headless Chromium sees frames arrive, and a button
switches the layer. Needs Debian's chromium and chromium-driver (setup.sh installs them
when it runs as root)."""

import shutil
import threading
import time

import pytest

from netscope.vision.live import pipeline
from netscope.vision.live.sources import PatternSource
from netscope.vision.live.view import LiveView
from netscope.vision.live.web import WebSink
from netscope.vision.models import load_model

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="Debian chromium + chromium-driver not installed")


def _browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,700"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def _wait(cond, seconds=20.0):
    deadline = time.time() + seconds
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_page_in_headless_chromium(tmp_path):
    from selenium.webdriver.common.by import By

    view = LiveView(load_model(), "activations", "_blocks.2")
    web = WebSink(view, "127.0.0.1", 0)
    done = threading.Event()
    worker = threading.Thread(target=lambda: pipeline.run(
        PatternSource(160, 120, fps=20), lambda f: view.render(f.image), [web],
        should_stop=done.is_set))
    worker.start()
    driver = _browser(tmp_path)
    try:
        driver.get(web.url)
        img = driver.find_element(By.ID, "stream")
        _wait(lambda: driver.execute_script("return arguments[0].naturalWidth", img) > 0)
        before = web.frames
        _wait(lambda: web.frames > before + 5)  # frames keep arriving
        _wait(lambda: "layer _blocks.2" in driver.find_element(By.ID, "status").text)
        driver.find_element(By.ID, "key-n").click()
        _wait(lambda: view.layer == "_blocks.3")
        _wait(lambda: "layer _blocks.3" in driver.find_element(By.ID, "status").text)
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 5000
    finally:
        driver.quit()
        done.set()
        worker.join(timeout=10)
        web.close()
