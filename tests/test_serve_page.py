"""The page of `xception serve` in a real headless browser (Debian's chromium, driven by Playwright):
a photo chosen or dropped shows the same top-5 as /predict; a file that is not an image shows the
server's error. `make test` installs chromium where it can (`make system-packages`)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest

from serving import ServerProcess, write_photos, write_tiny_weights

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
# Playwright cannot download its own browsers here: Debian's, with the switches a container needs.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the Python package playwright is not installed "
                                   "(pip install playwright)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (make system-packages does it as root)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    weights = write_tiny_weights(folder / "tiny.safetensors")
    with ServerProcess(weights, "--runtime", "torch", "--precision", "fp32") as running:
        yield running, write_photos(folder / "photos")


def shown_rows(page) -> list[tuple[str, str]]:
    page.wait_for_selector("#predictions tr.prediction", timeout=60_000)
    return [tuple(cell.inner_text() for cell in row.query_selector_all("td")[:2])
            for row in page.query_selector_all("#predictions tr.prediction")]


def expected_rows(url: str, photo: Path) -> list[tuple[str, str]]:
    answer = httpx.post(f"{url}/predict", content=photo.read_bytes(), timeout=60).json()
    return [(p["class_name"], f"{p['probability']:.4f}") for p in answer["predictions"]]


def test_serve_page_shows_the_top5_of_a_chosen_photo(browser, site, tmp_path):
    running, photos = site
    page = browser.new_page(viewport={"width": 900, "height": 560})
    page.goto(running.url + "/")
    page.set_input_files("#file", str(photos[2]))
    assert shown_rows(page) == expected_rows(running.url, photos[2])
    assert page.is_visible("#photo") and not page.is_visible("#error")
    assert "model xception_small" in page.inner_text("#model")
    # The server explains by default: the Grad-CAM overlay of the top class is shown beside the photo.
    page.wait_for_selector("#heatmap-panel:not([hidden])", timeout=60_000)
    assert page.evaluate("document.getElementById('heatmap').naturalWidth") > 0
    # SERVE_PAGE_SCREENSHOT=docs/images/serve_page.png makes the screenshot of the docs.
    screenshot = Path(os.environ.get("SERVE_PAGE_SCREENSHOT") or tmp_path / "page.png")
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000
    page.close()


def test_serve_page_takes_a_dropped_photo(browser, site):
    running, photos = site
    page = browser.new_page()
    page.goto(running.url + "/")
    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "coffee.jpg", {type: "image/jpeg"}));
            return transfer;
        }""", base64.b64encode(photos[1].read_bytes()).decode())
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    assert shown_rows(page) == expected_rows(running.url, photos[1])
    page.close()


def test_serve_page_shows_the_error_of_a_file_that_is_not_an_image(browser, site, tmp_path):
    running, _ = site
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    page = browser.new_page()
    page.goto(running.url + "/")
    page.set_input_files("#file", str(text))
    page.wait_for_selector("#error:not([hidden])", timeout=60_000)
    assert "not recognise it as an image" in page.inner_text("#error")
    assert not page.is_visible("#predictions")
    page.close()
