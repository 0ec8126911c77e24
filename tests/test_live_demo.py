"""The live inpainting demo of the built book (book/04_live_demo.md) in headless Chromium, opened from disk.

The page must load its WebAssembly runtime and network without any request leaving the machine, let a pointer
draw a hole, and fill it like PyTorch: the page's output canvas is compared with
``inpaintlib.inference.inpaint()`` for the same photo and mask (max abs difference <= 4/255 in the hole, known
pixels unchanged). It works at a 390 px phone width, and without WebAssembly it says so and keeps the static
figure. Needs ``_build/html`` built with the demo's assets (``make html``); skipped when Chromium or the build
is missing.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from browser import HTML, ISOLATION_HEADERS, open_page, require_built_page, serve
from inpaintlib.inference import inpaint
from inpaintlib.live_demo import PHOTOS
from inpaintlib.rundir import load_model
from inpaintlib.paths import photos_dir, stored_runs_dir

PAGE = "book/04_live_demo.html"
ASSETS = "_static/live-demo/assets.js"
STATE = "document.getElementById('live-demo').dataset.state"
PHOTO_DIR = photos_dir() / "val"


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
    """Check the page's output ``out`` (H, W, 3) against inpaint() for the page's photo and mask; returns the holes."""
    h, w = snap["h"], snap["w"]
    photo = np.array(snap["photo"], dtype=np.uint8).reshape(h, w, 4)[..., :3]
    mask = np.array(snap["mask"], dtype=np.float32).reshape(1, h, w)  # 1 = valid, 0 = hole
    image = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)  # (3, H, W)
    expected = inpaint(load_model(stored_runs_dir() / "pconv-l1"), image, torch.from_numpy(mask))
    expected = (expected * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    holes = mask[0] == 0
    diff = np.abs(out.astype(int) - expected.astype(int))
    assert diff[holes].max() <= 4, f"hole pixels differ from PyTorch's inpaint() by up to {diff[holes].max()}/255"
    assert np.array_equal(out[~holes], photo[~holes]), "known pixels changed"
    assert np.abs(out[holes].astype(int) - photo[holes].astype(int)).max() > 0, "the hole was not filled"
    return holes


def test_fill_in_the_page_matches_pytorch() -> None:
    html = require_built_page(PAGE, ASSETS)
    with open_page(html.as_uri(), viewport=(390, 900)) as page:
        assert _wait_state(page, "ready", "error", "unsupported") == "ready", page.evaluate(
            "document.querySelector('.ld-status').textContent"
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page is wider than a 390 px phone"
        box = page.locator(".ld-overlay").bounding_box()
        assert box["width"] <= 390
        # a stroke with the mouse: real pointerdown/pointermove/pointerup events
        page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.3 * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.6 * box["height"], steps=12)
        page.mouse.move(box["x"] + 0.8 * box["width"], box["y"] + 0.2 * box["height"], steps=6)
        page.mouse.up()
        page.click(".ld-fill")
        status = "document.querySelector('.ld-status').textContent"
        assert _wait_state(page, "filled", "error") == "filled", page.evaluate(status)
        timing = page.evaluate("document.querySelector('.ld-time').textContent")
        assert re.search(r"Filled in \d+ ms", timing), timing
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
    with open_page(html.as_uri(), viewport=(1000, 1400)) as page:
        _wait_state(page, "ready", "error", "unsupported")
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


def test_served_with_cross_origin_isolation_it_fills_with_threads() -> None:
    """From a static host sending COOP/COEP headers (here 127.0.0.1) the page fetches the plain .wasm/.onnx
    files instead of the script wrappers and runs two WebAssembly threads; the fill is the same."""
    require_built_page(PAGE, ASSETS)
    with serve(HTML, ISOLATION_HEADERS) as base, open_page(base + PAGE + "?threads=2") as page:
        assert _wait_state(page, "ready", "error", "unsupported") == "ready"
        assert page.evaluate("liveDemo.snapshot().threads") == 2
        page.locator(".ld-masks button").nth(3).click()
        page.wait_for_function("liveDemo.snapshot().mask.includes(0)")
        page.click(".ld-fill")
        assert _wait_state(page, "filled", "error") == "filled"
        _compare_with_pytorch(page.evaluate("liveDemo.snapshot()"), _canvas_rgb(page, ".ld-image"))
        assert any(u.endswith("/pconv-l1.fp16.onnx") for u in page.requests), "the model was not fetched as a file"
        assert not any(u.endswith(".onnx.js") or u.endswith(".wasm.js") for u in page.requests)
        assert page.outside == [] and _demo_errors(page) == []
