"""The live inpainting demo of the built book (book/04_live_demo.md) in headless Chromium, opened from disk.

The page must stay light until the reader starts the demo (under 3 MB loaded, the runtime and the network not
among it), then load them (at most 12 MB over http) without any request leaving the machine, let a pointer draw a
hole, and fill it like PyTorch: the page's output canvas is compared with ``inpaintlib.inference.inpaint()`` of
the book's best model in float32 for the same photo and mask (the page runs int8 weights: PSNR >= 40 dB over the
hole and at most 8/255 per pixel; known pixels unchanged). It names the model it runs, hints why Fill is greyed
out, shows the canvas within the first screen of a 390 px phone, and without WebAssembly it says so and keeps the
static figure. Needs ``_build/html`` built with the demo's assets (``make html``); skipped when Chromium or the
build is missing. Screenshots at 1280 and 390 px go to ``_build/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from browser import HTML, ISOLATION_HEADERS, open_page, require_built_page, serve
from inpaintlib.inference import inpaint
from inpaintlib.live_demo import PHOTOS, RUN
from inpaintlib.rundir import load_model
from inpaintlib.paths import photos_dir, stored_runs_dir

PAGE = "book/04_live_demo.html"
ASSETS = "_static/live-demo/assets.js"
STATE = "document.getElementById('live-demo').dataset.state"
PHOTO_DIR = photos_dir() / "val"
SHOTS = HTML.parent / "screenshots"
PHONE = (390, 844)  # a phone's first screen
BEST = "pconv-fill-scale"  # the book's best model (the lead's decision, issue 27)


def _bytes(urls: list[str]) -> int:
    """Bytes of the built book's files behind ``urls`` (file:// or the 127.0.0.1 server), each counted once."""
    from urllib.parse import unquote, urlsplit

    paths = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme == "file":
            paths.add(Path(unquote(parts.path)))
        elif parts.scheme == "http":
            paths.add(HTML / unquote(parts.path).lstrip("/"))
    return sum(p.stat().st_size for p in paths if p.is_file())


def _start(page) -> None:
    """Press "Start the demo" and wait until the network is ready."""
    _wait_state(page, "idle", "error", "unsupported")
    page.click(".ld-start")
    assert _wait_state(page, "ready", "error") == "ready", page.evaluate(
        "document.querySelector('.ld-status').textContent")


def _demo_errors(page) -> list[str]:
    """Errors that concern the demo: failed requests for its files, page and console errors. The theme's own
    missing font files and its thebe and theme-mode messages are not the demo's business; console lines about
    a failed resource name no URL, so failed requests are judged by ``page.failed`` instead."""
    failed = [u for u in page.failed if "live-demo" in u or "live_demo" in u]
    noise = ("THEBE_JS_URL", "theme mode", "Failed to load resource")
    return failed + [e for e in page.errors if not any(n in e for n in noise)]


def _wait_state(page, *states: str, timeout_ms: float = 180_000) -> str:
    wanted = " || ".join(f"{STATE} == '{s}'" for s in states)
    page.wait_for_function(wanted, timeout=timeout_ms)
    return page.evaluate(STATE)


def _canvas_rgb(page, selector: str) -> np.ndarray:
    data = page.evaluate(
        f"""() => {{ const c = document.querySelector('{selector}');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }}"""
    )
    size = page.evaluate(f"[document.querySelector('{selector}').height, document.querySelector('{selector}').width]")
    return np.array(data, dtype=np.uint8).reshape(size[0], size[1], 4)[..., :3]


def _compare_with_pytorch(snap: dict, out: np.ndarray) -> np.ndarray:
    """Check the page's output ``out`` (H, W, 3) against float32 inpaint() for the page's photo and mask; returns
    the holes."""
    h, w = snap["h"], snap["w"]
    photo = np.array(snap["photo"], dtype=np.uint8).reshape(h, w, 4)[..., :3]
    mask = np.array(snap["mask"], dtype=np.float32).reshape(1, h, w)  # 1 = valid, 0 = hole
    image = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)  # (3, H, W)
    expected = inpaint(load_model(stored_runs_dir() / RUN), image, torch.from_numpy(mask))
    expected = expected.permute(1, 2, 0).numpy() * 255  # (H, W, 3), not rounded
    holes = mask[0] == 0
    diff = out[holes].astype(np.float64) - expected[holes]
    psnr = 10 * np.log10(255**2 / max(float(np.mean(diff**2)), 1e-12))
    assert psnr >= 40, f"hole pixels differ from PyTorch's inpaint(): PSNR {psnr:.1f} dB"
    worst = np.abs(out.astype(int) - np.round(expected).astype(int))[holes].max()
    assert worst <= 8, f"hole pixels differ from PyTorch's inpaint() by up to {worst}/255"
    assert np.array_equal(out[~holes], photo[~holes]), "known pixels changed"
    assert np.abs(out[holes].astype(int) - photo[holes].astype(int)).max() > 0, "the hole was not filled"
    return holes


def test_the_demo_runs_the_books_best_model() -> None:
    assert RUN == BEST


def test_fill_in_the_page_matches_pytorch() -> None:
    html = require_built_page(PAGE, ASSETS)
    with open_page(html.as_uri(), viewport=PHONE) as page:
        assert _wait_state(page, "idle", "error", "unsupported") == "idle", page.evaluate(
            "document.querySelector('.ld-status').textContent"
        )
        page.wait_for_load_state("networkidle")
        before = _bytes(page.requests)
        assert before < 3e6, f"the page loads {before / 1e6:.1f} MB before the demo starts"
        assert not any(".onnx" in u or ".wasm" in u or "ort." in u for u in page.requests), "loaded before start"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page is wider than a 390 px phone"
        box = page.locator(".ld-overlay").bounding_box()
        assert box["width"] <= 390
        assert box["y"] + box["height"] <= PHONE[1], f"the canvas ends at {box['y'] + box['height']:.0f} px"
        fill = page.locator(".ld-fill")
        assert fill.is_disabled() and "Start the demo" in fill.get_attribute("title")
        assert "Start the demo" in page.locator(".ld-hint").inner_text()
        assert f"the book's best model, {RUN}" in page.locator(".ld-model").inner_text()
        assert "int8" in page.locator(".ld-model").inner_text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "live-demo-390-before.png"))
        seen = len(page.requests)
        # a stroke with the mouse: real pointerdown/pointermove/pointerup events; the first stroke starts the demo
        page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.3 * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.6 * box["height"], steps=12)
        page.mouse.move(box["x"] + 0.8 * box["width"], box["y"] + 0.2 * box["height"], steps=6)
        page.mouse.up()
        assert _wait_state(page, "ready", "error") == "ready", page.evaluate(
            "document.querySelector('.ld-status').textContent")
        download = _bytes(page.requests[seen:])
        assert download <= 15e6  # the file:// copy: base64 wrappers, a third larger than http (no target)
        print(f"\nfrom disk: {before / 1e6:.2f} MB before the start, {download / 1e6:.2f} MB for the demo")
        page.click(".ld-fill")
        status = "document.querySelector('.ld-status').textContent"
        assert _wait_state(page, "filled", "error") == "filled", page.evaluate(status)
        timing = page.evaluate("document.querySelector('.ld-time').textContent")
        assert re.search(r"Filled in \d+ ms", timing), timing
        page.screenshot(path=str(SHOTS / "live-demo-390-filled.png"), full_page=True)
        out = _canvas_rgb(page, ".ld-image")  # (H, W, 3) what the reader sees
        snap = page.evaluate("liveDemo.snapshot()")
        assert page.outside == [], f"requests that would leave the machine: {page.outside}"
        assert _demo_errors(page) == []

    holes = _compare_with_pytorch(snap, out)
    assert 300 < holes.sum() < 0.5 * holes.size, f"the stroke made {holes.sum()} hole pixels"
    photo = np.array(snap["photo"], dtype=np.uint8).reshape(snap["h"], snap["w"], 4)[..., :3]
    site_photo = np.asarray(Image.open(HTML / "_static/live-demo/photos" / (PHOTOS[0].rsplit(".", 1)[0] + ".png")))
    assert np.array_equal(photo, site_photo), "the page's photo is not the first demo photo, pixel for pixel"


def test_random_holes_undo_toggles_and_own_photo(tmp_path) -> None:
    html = require_built_page(PAGE, ASSETS)
    own = tmp_path / "own.png"  # 300x200: scaled to 256x171 in the page, padded to 256x256 for the network
    Image.open(PHOTO_DIR / "gcompris-world-lemur.jpg").resize((300, 200)).save(own)
    with open_page(html.as_uri(), viewport=(1280, 900)) as page:
        _start(page)
        buttons = page.locator(".ld-masks button")
        assert buttons.count() >= 3
        buttons.nth(1).click()
        page.wait_for_function("liveDemo.snapshot().mask.includes(0)")
        mask = np.array(page.evaluate("liveDemo.snapshot().mask"))
        assert 0.1 <= 1 - mask.mean() <= 0.2  # the second mask is drawn for 10-20 % holes
        page.click(".ld-undo")
        assert min(page.evaluate("liveDemo.snapshot().mask")) == 1
        buttons.nth(0).click()
        page.wait_for_function("liveDemo.snapshot().mask.includes(0)")
        page.click(".ld-fill")
        assert _wait_state(page, "filled", "error") == "filled"
        filled = _canvas_rgb(page, ".ld-image")
        page.check(".ld-show-original")
        photo = np.array(page.evaluate("liveDemo.snapshot().photo"), dtype=np.uint8).reshape(*filled.shape[:2], 4)
        assert np.array_equal(_canvas_rgb(page, ".ld-image"), photo[..., :3])
        page.uncheck(".ld-show-original")
        assert np.array_equal(_canvas_rgb(page, ".ld-image"), filled)
        page.click(".ld-clear")
        assert min(page.evaluate("liveDemo.snapshot().mask")) == 1
        assert page.locator(".ld-fill").is_disabled()  # nothing to fill
        assert "Draw a hole" in page.locator(".ld-fill").get_attribute("title")
        # the reader's own photo: not square, so the page pads it as inpaint() does
        page.set_input_files(".ld-own input", str(own))
        page.wait_for_function("liveDemo.snapshot().h == 171")
        assert page.evaluate("liveDemo.snapshot().w") == 256
        buttons.nth(2).click()
        page.wait_for_function("liveDemo.snapshot().mask.includes(0)")
        page.click(".ld-fill")
        assert _wait_state(page, "filled", "error") == "filled"
        assert "256×256 px" in page.evaluate("document.querySelector('.ld-time').textContent")
        _compare_with_pytorch(page.evaluate("liveDemo.snapshot()"), _canvas_rgb(page, ".ld-image"))
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "live-demo-1280.png"), full_page=True)
        assert page.outside == [] and _demo_errors(page) == []


def test_without_webassembly_the_static_figure_stays() -> None:
    html = require_built_page(PAGE, ASSETS)
    # a browser without WebAssembly, as far as the page can tell
    with open_page(html.as_uri(), init_script="delete globalThis.WebAssembly;") as page:
        assert _wait_state(page, "unsupported", "ready", "error", timeout_ms=60_000) == "unsupported"
        assert "no WebAssembly" in page.evaluate("document.querySelector('.ld-status').textContent")
        assert page.locator(".ld-static img").is_visible()
        assert page.evaluate("document.querySelector('.ld-static img').naturalWidth") > 0, "static figure missing"
        assert page.locator(".ld-app").is_hidden()
        assert page.outside == []


def test_asset_build_names_what_is_missing(tmp_path) -> None:
    """The build step (python -m inpaintlib.live_demo) says what to run first; no browser needed."""
    from inpaintlib.live_demo import build

    with pytest.raises(FileNotFoundError, match="build the book first"):
        build(tmp_path)
    (tmp_path / "index.html").write_text("<html></html>")
    with pytest.raises(FileNotFoundError, match="npm ci"):
        build(tmp_path, node_modules=tmp_path / "node_modules")


def test_served_it_downloads_at_most_12_mb_and_fills_with_threads() -> None:
    """From a static host sending COOP/COEP headers (here 127.0.0.1) the page fetches the plain .gz files instead
    of the script wrappers -- under 3 MB before the start, at most 12 MB for the demo -- and runs two
    WebAssembly threads; the fill is the same."""
    require_built_page(PAGE, ASSETS)
    with serve(HTML, ISOLATION_HEADERS) as base, open_page(base + PAGE + "?threads=2") as page:
        assert _wait_state(page, "idle", "error", "unsupported") == "idle"
        page.wait_for_load_state("networkidle")
        before = _bytes(page.requests)
        assert before < 3e6, f"the page loads {before / 1e6:.1f} MB before the demo starts"
        seen = len(page.requests)
        _start(page)
        download = _bytes(page.requests[seen:])
        assert download <= 12e6, f"the demo downloads {download / 1e6:.1f} MB"
        assert abs(download - page.evaluate("liveDemo.snapshot().loadedBytes")) < 0.1e6, "the progress bar's total"
        print(f"\nover http: {before / 1e6:.2f} MB before the start, {download / 1e6:.2f} MB for the demo")
        assert page.evaluate("liveDemo.snapshot().threads") == 2
        page.locator(".ld-masks button").nth(3).click()
        page.wait_for_function("liveDemo.snapshot().mask.includes(0)")
        page.click(".ld-fill")
        assert _wait_state(page, "filled", "error") == "filled"
        _compare_with_pytorch(page.evaluate("liveDemo.snapshot()"), _canvas_rgb(page, ".ld-image"))
        assert any(u.endswith(f"/{RUN}.int8.onnx.gz") for u in page.requests), "the model was not fetched as a file"
        assert not any(u.endswith(".gz.js") for u in page.requests)
        assert page.outside == [] and _demo_errors(page) == []
