"""memnet serve's page in headless Chromium (Debian's package) driven by Playwright.

A real uvicorn server on a free loopback port serves the page; the browser uploads a picture
made here, restores it, moves the comparison slider, downloads the result and takes a
screenshot (set MEMNET_SERVE_SCREENSHOT=docs/images/serve.png to keep it).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from memnet.serving.settings import ServeSettings

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="needs the serve extra: pip install -e '.[serve]'")
httpx2 = pytest.importorskip("httpx2", reason="needs the serve extra: pip install -e '.[serve]'")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the browser extra: pip install -e '.[browser]'"
)

CHROMIUM = os.environ.get("MEMNET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)",
)


def scene_picture() -> bytes:
    """A small picture with edges and lettering, drawn here (so nothing is read from disk)."""
    y, x = np.mgrid[0:120, 0:160]
    sky = np.stack([90 + x * 0.6, 140 + y * 0.5, 200 - y * 0.3], axis=-1)
    image = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((18, 20, 70, 72), fill=(250, 210, 60), outline=(120, 80, 0), width=2)
    draw.rectangle((84, 54, 146, 112), fill=(40, 110, 60), outline=(10, 40, 20), width=2)
    for stripe in range(88, 146, 8):
        draw.line((stripe, 58, stripe, 108), fill=(200, 230, 200), width=1)
    draw.text((20, 92), "memnet", fill=(20, 20, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A uvicorn server in a thread, with the bundled small SR model and the baselines."""
    from memnet.serving.app import create_app

    port = free_port()
    app = create_app(ServeSettings(port=port, models=("memnet-sr", "memnet-denoise", "bicubic")))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1000, "height": 860}, accept_downloads=True
        )
        tab = context.new_page()
        requests: list[str] = []
        tab.on("request", lambda request: requests.append(request.url))
        tab.goto(server + "/")
        yield tab
        # Everything the page loaded came from this server (no CDN, no other host).
        assert requests
        assert all(url.startswith((server, "blob:")) for url in requests), requests
        context.close()
        browser.close()


def test_restore_compare_and_download(page, server: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    picture = scene_picture()
    page.wait_for_selector("#model option[value='memnet-sr']", state="attached")
    page.select_option("#task", "sr")
    page.select_option("#level", "2")
    page.select_option("#model", "memnet-sr")
    page.set_input_files(
        "#file", files=[{"name": "scene.png", "mimeType": "image/png", "buffer": picture}]
    )
    page.click("#go")
    page.wait_for_selector("#result", state="visible", timeout=60_000)

    # The comparison slider moves the cut between before and after.
    page.locator("#slider").fill("30")
    assert page.eval_on_selector("#compare", "e => e.style.getPropertyValue('--cut')") == "30%"
    shown = page.eval_on_selector("#after", "e => [e.naturalWidth, e.naturalHeight]")
    assert shown == [320, 240]

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "scene_x2.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    size = saved.stat().st_size
    assert size == int(page.get_attribute("#download", "data-size") or -1)
    with Image.open(saved) as restored:
        assert restored.size == (320, 240)
    # The very bytes the API gives for the same picture and options.
    direct = httpx2.post(
        server + "/v1/restore",
        files={"image": ("scene.png", picture, "image/png")},
        data={"task": "sr", "scale": "2", "model": "memnet-sr"},
        timeout=60,
    )
    assert direct.status_code == 200
    assert saved.read_bytes() == direct.content

    page.locator("#slider").fill("38")  # the cut crosses the sun: before on its left
    shot = Path(os.environ.get("MEMNET_SERVE_SCREENSHOT", tmp_path / "serve.png"))
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        assert image.width == 1000


def test_errors_are_shown_as_messages(page) -> None:  # type: ignore[no-untyped-def]
    page.set_input_files(
        "#file",
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture\n" * 10}],
    )
    page.click("#go")
    page.wait_for_selector("#error", state="visible", timeout=30_000)
    assert "notes.txt: not an image" in (page.text_content("#error") or "")
