"""The atlas site in a real browser from file://: every page opens without console errors,
every image loads, and sorting the tiles works. Needs Debian's chromium and
chromium-driver (setup.sh installs them when it runs as root)."""

import numpy as np
import pytest
from PIL import Image

from netscope.render.atlas_site import save_site
from netscope.vision.units.atlas_run import AtlasSettings
from netscope.vision.units.make import PictureSettings, make_atlas
from netscope.vision.units.site import site_views
from tests.live.test_browser import CHROMIUM, DRIVER, _browser
from tests.vision import tiny_units as T

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="Debian chromium + chromium-driver not installed")


def test_every_page_loads_in_chromium(tmp_path):
    from selenium.webdriver.common.by import By

    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        img = T.red_square(rng, 6 + 4 * i, 10) if i % 2 else T.edge(rng, 8 + 3 * i)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(root / f"{i}.png")
    out = tmp_path / "site"
    lm = T.loaded()
    run = make_atlas(lm, root, out, AtlasSettings(("detect", "mix"), top_k=3, workers=0),
                     PictureSettings(steps=2, diverse=2), table="csv")
    save_site(run.atlas, site_views(run.atlas, lm, root), out)
    driver = _browser(tmp_path, logs=True)
    try:
        for page in sorted(out.rglob("*.html")):
            driver.get(page.as_uri())
            images = driver.find_elements(By.TAG_NAME, "img")
            broken = [i.get_attribute("src") for i in images if not driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", i)]
            assert broken == [], f"{page}: {broken}"
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert errors == [], f"{page}: {errors}"
        driver.get((out / "detect" / "index.html").as_uri())
        driver.find_element(By.XPATH, "//button[text()='firing share']").click()
        order = [t.get_attribute("data-fires") for t in
                 driver.find_elements(By.CLASS_NAME, "tile")]
        assert order == sorted(order, key=float, reverse=True)
    finally:
        driver.quit()
