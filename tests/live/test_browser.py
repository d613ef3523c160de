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
from netscope.vision.models.zoo import load_model

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="Debian chromium + chromium-driver not installed")


def _browser(tmp_path, logs: bool = False):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,700"):
        opts.add_argument(flag)
    if logs:  # the page's console, for driver.get_log("browser")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
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


ATTACK = """<!doctype html><html><body><pre id="log">running</pre><script>
const params = new URLSearchParams(location.search);
const target = params.get('target'), token = params.get('token') || '';
const log = [];
async function attempt(name, fn) {
  try { log.push(name + ': ' + await fn()); } catch (e) { log.push(name + ': error'); } }
(async () => {
  for (const k of ['s', 'q'])
    await attempt('press ' + k, async () => (await fetch(
      target + 'key?k=' + k + '&token=' + token, {method: 'POST', mode: 'no-cors'})).type);
  await attempt('read frame', async () => 'read ' + (await (await fetch(
    target + 'frame.jpg?token=' + token)).arrayBuffer()).byteLength);
  await attempt('read status', async () => await (await fetch(
    target + 'status?token=' + token)).text());
  await attempt('img', () => new Promise(done => { const i = new Image();
    i.onload = () => done('loaded ' + i.naturalWidth); i.onerror = () => done('blocked');
    i.src = target + 'frame.jpg?token=' + token; }));
  document.getElementById('log').textContent = log.join('\\n');
  document.title = 'done';
})();
</script></body></html>"""


@pytest.mark.parametrize("knows_token", [False, True])
def test_another_origin_cannot_press_keys_or_read_frames(tmp_path, knows_token):
    """A page from another localhost port (another origin, as any web site the user has
    open) tries the cross-origin attacks in a real browser; even a page that somehow
    knew the token is refused by the Origin / Sec-Fetch-Site checks."""
    import functools
    import http.server
    import urllib.parse

    import numpy as np

    from tests.live.test_guard import FakeView

    (tmp_path / "attack.html").write_text(ATTACK)
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    evil_thread = threading.Thread(target=evil.serve_forever, daemon=True)
    evil_thread.start()
    view = FakeView()
    web = WebSink(view, "127.0.0.1", 0)
    frame = np.full((48, 64, 3), 200, np.uint8)
    stop = threading.Event()
    feeder = threading.Thread(target=lambda: [web(frame) or time.sleep(0.05)
                                              for _ in iter(lambda: stop.is_set(), True)])
    feeder.start()
    driver = _browser(tmp_path)
    try:
        query = urllib.parse.urlencode({"target": web.base,
                                        "token": web.guard.token if knows_token else ""})
        driver.get(f"http://127.0.0.1:{evil.server_address[1]}/attack.html?{query}")
        _wait(lambda: driver.title == "done")
        log = driver.find_element("id", "log").text.splitlines()
        assert "read frame: error" in log and "read status: error" in log
        assert "img: blocked" in log
        time.sleep(0.3)  # any key that got through would be applied by now
        assert view.pressed == [] and web.keys.empty()
        # the real page, in the same browser, still works
        driver.get(web.url)
        driver.find_element("id", "key-n").click()
        _wait(lambda: view.pressed == ["n"])
    finally:
        driver.quit()
        stop.set()
        feeder.join(timeout=5)
        web.close()
        evil.shutdown()
        evil.server_close()
