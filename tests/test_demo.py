"""``translate-demo``: the page's work as plain functions (an image file in, its translation at its own size out;
the cGAN's digits; the run's name, step and metrics), its settings, and the page itself in a real headless
Chromium driven by Selenium: it loads, an uploaded image comes back translated at its size, and a file that is
no image shows a readable message.

The browser test needs Gradio and Selenium (the ``dev`` extra) and Debian's ``chromium`` and
``chromium-driver`` (``apt-get install chromium chromium-driver``); without them it is skipped, saying which.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import shutil
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import helpers
import translate
from _models_helpers import TINY_CYCLEGAN, train, translate_test, write_folder
from helpers import compose_config
from translate.cli.demo import main as demo_main
from translate.cli.demo_page import DemoPage, about_markdown
from translate.errors import ConfigError
from translate.settings.validate import validate_demo


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cyclegan")
    for split in ("train", "test"):
        write_folder(root / "data" / f"{split}A", 2, 16, seed=len(split), prefix="a")
        write_folder(root / "data" / f"{split}B", 2, 16, seed=len(split) + 1, prefix="b")
    train(root / "run", [*TINY_CYCLEGAN, f"data.root={root / 'data'}", "logger=none", "trainer.max_steps=2", "name=horses"])
    translate_test(root / "run", root / "run" / "test_latest", "metrics.fid=false")
    return root / "run"


def demo_config(run: Path, *overrides: str):
    return validate_demo(compose_config("demo", f"run={run}", "device=cpu", *overrides))


def photo(h: int = 30, w: int = 45, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def files(tmp_path) -> dict:
    Image.fromarray(photo()).save(tmp_path / "horse.png")
    (tmp_path / "notes.png").write_text("this is not an image\n")
    return {"good": tmp_path / "horse.png", "bad": tmp_path / "notes.png"}


# ------------------------------------------------------------------------------------ the page's work


def test_an_image_comes_back_translated_at_its_own_size_in_each_direction(cyclegan_run, files, tmp_path):
    page = DemoPage(demo_config(cyclegan_run), tmp_path / "work")
    assert page.directions == ["AtoB", "BtoA"] and not page.conditional
    for direction in ("AtoB", "BtoA"):
        shown, out, status = page.translate(str(files["good"]), direction)
        expected = translate.load(cyclegan_run, direction=direction, device="cpu")(photo())
        assert np.array_equal(np.asarray(Image.open(out)), expected)
        assert np.array_equal(np.asarray(Image.open(shown)), photo())
        assert Path(out).name == f"horse_{direction}.png" and status == f"horse.png: 45 x 30 px, 8-bit, {direction}."
    # A large image goes in tiles, and comes back at its size just the same.
    Image.fromarray(photo(40, 72)).save(tmp_path / "wide.png")
    tiled = DemoPage(demo_config(cyclegan_run, "tile=32", "overlap=8"), tmp_path / "work")
    _, out, status = tiled.translate(str(tmp_path / "wide.png"))
    assert np.asarray(Image.open(out)).shape == (40, 72, 3) and status.endswith("AtoB in 6 tiles.")


def test_a_file_that_is_no_image_gives_a_readable_line(cyclegan_run, files, tmp_path):
    page = DemoPage(demo_config(cyclegan_run), tmp_path / "work")
    shown, out, status = page.translate(str(files["bad"]))
    assert (shown, out) == (None, None)
    assert status.startswith("**Could not translate:** notes.png: cannot read image (") and "\n" not in status
    assert str(files["bad"].parent) not in status  # the server's temporary path is not the visitor's business
    assert page.translate(None)[2] == "Drop an image (or click to pick one) first."


def test_the_page_shows_the_runs_name_model_step_and_test_metrics(cyclegan_run, tmp_path):
    page = DemoPage(demo_config(cyclegan_run), tmp_path / "work")
    text = about_markdown(page.info)
    assert text.startswith("### horses\n") and "**model** cyclegan" in text and "**step** 2 (epoch 1)" in text
    metrics = (cyclegan_run / "test_latest" / "metrics.json").read_text()
    key = next(iter(json.loads(metrics)))
    assert f"| {key} |" in text


def test_the_cgan_draws_the_chosen_classes_a_row_each(cgan_run, tmp_path):
    page = DemoPage(demo_config(cgan_run), tmp_path / "work")
    assert page.conditional and page.num_classes == 10 and page.directions == ["AtoB"]
    grid, status = page.sample(["3", "1"], 4, 7)
    side = helpers.IMAGE_SIZE
    # torchvision's grid: 2 px padding around each digit; rows are classes 1 then 3, four samples each.
    assert Image.open(grid).size == (2 + 4 * (side + 2), 2 + 2 * (side + 2))
    assert status == "4 samples of classes 1, 3, a row each (seed 7)."
    again, _ = page.sample(["1", "3"], 4, 7)
    assert np.array_equal(np.asarray(Image.open(grid)), np.asarray(Image.open(again)))
    assert page.sample([], 4, 0) == (None, "**Could not translate:** choose at least one class")
    assert page.translate(str(tmp_path))[2].startswith("**Could not translate:** this cGAN draws digits")


def test_settings_are_checked_before_anything_loads(tmp_path, capsys):
    for args, message in (
        (["run=x", "port=70000"], "port=70000 must be within 1..65535 (or null: the first free from 7860)"),
        (["run=x", "tile=64", "overlap=64"], "overlap=64 must be smaller than tile=64, e.g. overlap=8"),
        (["run=x", "host="], "host='' is empty; use 127.0.0.1 (this machine) or 0.0.0.0 (every interface)"),
        ([], "run is not set; add run=<run directory, checkpoint, bundle or pretrained name>, e.g. run=horse2zebra"),
        ([f"run={tmp_path / 'nothing'}"], f"{tmp_path / 'nothing'}: no such run, checkpoint or pretrained generator"),
    ):
        with pytest.raises(SystemExit):
            demo_main(args)
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"translate-demo: error: {message}") and "\n" not in err, err
    assert validate_demo(compose_config("demo", "run=x")).host == "127.0.0.1"
    with pytest.raises(ConfigError):
        validate_demo(compose_config("demo", "run=x", "port=0"))


def test_without_gradio_the_command_says_how_to_get_it(cyclegan_run, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "gradio" else find_spec(name, *args))
    with pytest.raises(SystemExit):
        demo_main([f"run={cyclegan_run}"])
    assert capsys.readouterr().err.strip() == 'translate-demo: error: translate-demo needs Gradio: pip install "translate[demo]"'


# ------------------------------------------------------------------------------------------ in a browser


def _browser_missing() -> str:
    for module in ("gradio", "selenium"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[dev]')"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install chromium chromium-driver)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _image_at(src: str) -> np.ndarray:
    """The pixels an ``<img>`` shows, from its URL (served by the demo) or data URL."""
    if src.startswith("data:"):
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
    with urllib.request.urlopen(src, timeout=30) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())))


@pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing() or "ready")
def test_the_page_in_a_headless_browser(cyclegan_run, files, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from translate.cli.demo_page import serve

    port = _free_port()
    blocks = serve(demo_config(cyclegan_run, f"port={port}"), block=False)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    wait = WebDriverWait(driver, 60)
    try:
        url = f"http://127.0.0.1:{port}/"

        def shows(elem_id: str, text: str) -> str:
            """The text of the element ``elem_id`` once it holds ``text`` (found anew each time: Gradio re-renders)."""
            return wait.until(lambda d: text in d.find_element(By.ID, elem_id).text and d.find_element(By.ID, elem_id).text)

        driver.get(url)
        assert "cyclegan" in shows("about", "horses") and "step 2 (epoch 1)" in shows("about", "horses")

        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]")).send_keys(str(files["good"]))
        shows("status", "horse.png: 45 x 30 px")
        expected = translate.load(cyclegan_run, device="cpu")(photo())
        result = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#result img").get_attribute("src"))
        assert np.array_equal(_image_at(result), expected)
        # The download link gives the same PNG.
        link = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#download a").get_attribute("href"))
        assert np.array_equal(_image_at(link), expected)

        driver.get(url)  # a fresh page: an empty upload box again
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]")).send_keys(str(files["bad"]))
        assert "notes.png: cannot read image" in shows("status", "Could not translate")
        assert "Traceback" not in driver.find_element(By.TAG_NAME, "body").text
        # Everything the page fetched came from the demo itself: no web fonts, scripts or telemetry elsewhere.
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert fetched and not [f for f in fetched if not f.startswith((url, "data:", "blob:"))]
    finally:
        driver.quit()
        blocks.close()
