"""Build-time assets of the live inpainting demo page (``book/04_live_demo.md``), written into the built HTML.

``python -m inpaintlib.live_demo --site _build/html`` runs after ``jupyter-book build`` (the Makefile's
``html`` target) and writes ``_build/html/_static/live-demo/``:

* the WebAssembly runtime of ``onnxruntime-web`` (installed by ``npm ci`` from the pinned
  ``package-lock.json``): ``ort.wasm.min.js`` (a classic script defining ``ort``),
  ``ort-wasm-simd-threaded.mjs``, the ``.wasm`` gzip-compressed (``.wasm.gz``: 3.7 MB instead of 14 MB; the page
  inflates it with the browser's ``DecompressionStream``), its licence;
* the book's best model, the stored run ``data/runs/pconv-fill-scale`` (:data:`RUN`), exported to ONNX with its
  large convolutions' weights as int8 and the rest as float16, computed in float32 (:mod:`inpaintlib.export`),
  also gzip-compressed; its head's biharmonic fill is an input of the graph, which the page computes itself
  (``book/_static/live_demo_fill.js``, the algorithm of :mod:`inpaintlib.smooth_fill`);
* a handful of validation photos (``data/photos/val``) cut to 256x256 PNGs, and random irregular masks from
  :func:`inpaintlib.masks.irregular_mask` (the training generator) as PNGs;
* a static figure filled by PyTorch (:func:`inpaintlib.inference.inpaint`), shown where WebAssembly is missing;
* ``*.js`` wrappers holding the same binaries as base64 (``assets.js``, ``*.gz.js``).

Why the wrappers: a page opened from ``file://`` may load classic ``<script>`` files but may not ``fetch()``
or ``import()`` files next to it, nor read back the pixels of a file image drawn into a canvas. The page uses
the plain binaries when served over http(s) and the script wrappers from ``file://``; the bytes are the same.
The page loads the runtime and the model only when the reader starts the demo (a button, or the first stroke);
``assets.js`` lists their sizes for its progress bar. Nothing leaves the reader's machine either way.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inpaintlib.claims import BEST
from inpaintlib.paths import photos_dir, repo_root, stored_runs_dir

__all__ = ["PHOTOS", "MASK_RATIOS", "SIZE", "RUN", "MODEL_NAME", "PRECISION", "build", "demo_photo", "cli"]

SIZE = 256  #: side of the demo photos and masks (the run's training size)
#: Validation photos offered in the demo (never trained on), from ``data/photos/val``.
PHOTOS = [
    "gcompris-monument-taj-mahal.jpg",
    "gcompris-world-scarlet-macaw.jpg",
    "opencv-fruits.jpg",
    "palapeli-castle-maintenon.jpg",
    "gcompris-farm-pig.jpg",
    "tuxpaint-mossy-log.jpg",
]
#: Hole-ratio ranges of the random masks (one mask each, seeds 0, 1, ...).
MASK_RATIOS = [(0.05, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4)]
#: The stored run the demo runs: the book's best model (the PConv U-Net with a head that blends in a fill).
RUN = BEST
MODEL_NAME = f"{RUN}.int8.onnx"
#: What the page says about the numbers it computes with.
PRECISION = "int8 weights in the large convolutions, float16 in the others, computed in float32"
_ORT_FILES = ["ort.wasm.min.js", "ort-wasm-simd-threaded.mjs"]
_WASM = "ort-wasm-simd-threaded.wasm"


def demo_photo(name: str) -> Image.Image:
    """Validation photo ``name`` as the demo shows it: short side resized to 256 (Lanczos), centre crop 256x256."""
    path = photos_dir() / "val" / name
    if not path.is_file():
        raise FileNotFoundError(f"demo photo {path} does not exist (see PHOTOS in inpaintlib/live_demo.py)")
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = SIZE / min(image.size)
        w, h = max(SIZE, round(image.width * scale)), max(SIZE, round(image.height * scale))
        image = image.resize((w, h), Image.Resampling.LANCZOS)
        left, top = (w - SIZE) // 2, (h - SIZE) // 2
        return image.crop((left, top, left + SIZE, top + SIZE))


def _credits() -> dict[str, tuple[str, str]]:
    """(author, licence) of each validation photo, from the table in ``data/photos/SOURCES.md``."""
    found = {}
    for line in (photos_dir() / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 6 and cells[1] == "val":
            found[cells[0]] = (cells[4], cells[5])
    return found


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _write_photos(out: Path) -> list[dict]:
    """Each photo as a PNG, a 64 px thumbnail (shown with the page) and a script wrapper holding the PNG as a
    data URL (loaded when the reader picks the photo: a canvas may read back a data URL's pixels from file://)."""
    credits = _credits()
    entries = []
    for name in PHOTOS:
        photo = demo_photo(name)
        data = _png_bytes(photo)
        stem = Path(name).stem
        file, thumb, script = f"photos/{stem}.png", f"photos/{stem}.thumb.png", f"photos/{stem}.js"
        (out / file).write_bytes(data)
        (out / thumb).write_bytes(_png_bytes(photo.resize((64, 64), Image.Resampling.LANCZOS)))
        _script_wrapper(out / script, f"photo:{stem}", {"src": _data_url(data)})
        author, licence = credits.get(name, ("see data/photos/SOURCES.md", ""))
        entries.append(
            {"name": stem, "file": file, "thumb": thumb, "script": script, "author": author, "licence": licence}
        )
    return entries


def _write_masks(out: Path) -> list[dict]:
    from inpaintlib.masks import hole_ratio, irregular_mask, save_mask_png

    entries = []
    for seed, (lo, hi) in enumerate(MASK_RATIOS):
        mask = irregular_mask(SIZE, SIZE, hole_ratio=(lo, hi), generator=torch.Generator().manual_seed(seed))
        file = f"masks/mask-{seed + 1}.png"
        save_mask_png(mask, out / file)
        ratio = float(hole_ratio(mask))
        entries.append({"file": file, "src": _data_url((out / file).read_bytes()), "ratio": round(ratio, 3)})
    return entries


def _static_figure(out: Path, run: Path, photo: str, mask_file: Path) -> Path:
    """Masked input | PyTorch's fill | original, side by side: what the page shows without WebAssembly."""
    from inpaintlib.inference import inpaint
    from inpaintlib.masks import load_mask_png

    image = torch.from_numpy(np.asarray(demo_photo(photo), dtype=np.float32) / 255).permute(2, 0, 1)  # (3, H, W)
    mask = load_mask_png(mask_file)  # (1, H, W), 1 = valid
    filled = inpaint(run, image, mask)
    holes = image * mask + torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1) * (1 - mask)  # holes in magenta
    gap = torch.ones(3, SIZE, 8)
    row = torch.cat([holes, gap, filled, gap, image], dim=2)
    pixels = (row.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    path = out / "static-fill.png"
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    return path


def _script_wrapper(path: Path, variable: str, payload: dict) -> None:
    """A classic script that stores ``payload`` (JSON) under ``window.LIVE_DEMO[variable]``."""
    text = "window.LIVE_DEMO = window.LIVE_DEMO || {};\n"
    text += f"window.LIVE_DEMO[{json.dumps(variable)}] = {json.dumps(payload)};\n"
    path.write_text(text, encoding="ascii")


def _gzip(data: bytes, path: Path) -> int:
    """Write ``data`` gzip-compressed (no name, no time stamp: the same bytes every build) to ``path``; its size."""
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    path.write_bytes(packed)
    return len(packed)


def _size(path: Path) -> int:
    return path.stat().st_size


def _copy_runtime(out: Path, node_modules: Path) -> dict:
    dist = node_modules / "onnxruntime-web" / "dist"
    if not dist.is_dir():
        raise FileNotFoundError(f"{dist} is missing: run `npm ci` in {repo_root()} first (see package.json)")
    for name in _ORT_FILES:
        shutil.copy2(dist / name, out / name)
    _gzip((dist / _WASM).read_bytes(), out / f"{_WASM}.gz")
    meta = json.loads((dist.parent / "package.json").read_text())
    version = meta["version"]
    (out / "onnxruntime-web.LICENSE.txt").write_text(
        f"ONNX Runtime Web v{version} (npm package onnxruntime-web), Copyright (c) Microsoft Corporation.\n"
        f"Licensed under the {meta.get('license', 'MIT')} License: https://github.com/microsoft/onnxruntime\n",
        encoding="utf-8",
    )
    packed = (out / f"{_WASM}.gz").read_bytes()
    wrapper = out / f"{_WASM}.gz.js"
    _script_wrapper(wrapper, "runtime", {"version": version, "wasm_gz": base64.b64encode(packed).decode("ascii"),
                                         "mjs": (dist / "ort-wasm-simd-threaded.mjs").read_text(encoding="utf-8")})
    return {
        "version": version, "script": _ORT_FILES[0], "wasm": f"{_WASM}.gz",
        "wasm_bytes": len(packed), "http_bytes": _size(out / _ORT_FILES[0]) + _size(out / _ORT_FILES[1]) + len(packed),
        "file_bytes": _size(out / _ORT_FILES[0]) + _size(wrapper),
    }


def _export_model(out: Path, run: Path) -> dict:
    from inpaintlib.export import export_onnx
    from inpaintlib.rundir import load_model

    model_path = out / MODEL_NAME
    # Export again when the weights or the code that builds the graph changed since the last export.
    package = Path(__file__).resolve().parent
    sources = [run / "weights.pt", package / "export.py", package / "layers.py", *(package / "models").glob("*.py")]
    if not model_path.is_file() or model_path.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        export_onnx(run, model_path, fp16=True, int8=True)
    data = model_path.read_bytes()
    packed = _gzip(data, out / f"{MODEL_NAME}.gz")
    wrapper = out / f"{MODEL_NAME}.gz.js"
    _script_wrapper(wrapper, "model", {"onnx_gz": base64.b64encode((out / f"{MODEL_NAME}.gz").read_bytes()).decode()})
    model = load_model(run)
    iterations = model.head.fill_iterations if model.head is not None else 0
    return {"file": f"{MODEL_NAME}.gz", "bytes": len(data), "http_bytes": packed, "file_bytes": _size(wrapper),
            "multiple": model.multiple, "run": f"data/runs/{run.name}", "name": run.name,
            "precision": PRECISION if run.name == RUN else "see its export", "fill_iterations": iterations}


def build(site: str | Path, run: str | Path | None = None, node_modules: str | Path | None = None) -> Path:
    """Write the demo's assets into ``site/_static/live-demo`` (``site`` = the built HTML); returns that folder."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} holds no index.html: build the book first (jupyter-book build .)")
    run = Path(run) if run is not None else stored_runs_dir() / RUN
    out = site / "_static" / "live-demo"
    for sub in ("photos", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    runtime = _copy_runtime(out, Path(node_modules) if node_modules is not None else repo_root() / "node_modules")
    model = _export_model(out, run)
    photos, masks = _write_photos(out), _write_masks(out)
    figure = _static_figure(out, run, PHOTOS[0], out / masks[1]["file"])
    manifest = {"size": SIZE, "model": model, "runtime": runtime, "photos": photos, "masks": masks,
                "static_figure": figure.name}
    _script_wrapper(out / "assets.js", "assets", manifest)
    return out


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inpaintlib.live_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--site", default="_build/html", help="the built HTML book (default: _build/html)")
    p.add_argument("--run", default=None, help=f"run directory to export (default: data/runs/{RUN})")
    args = p.parse_args(argv)
    try:
        out = build(args.site, args.run)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    manifest = (out / "assets.js").read_text(encoding="ascii")
    assets = json.loads(manifest.splitlines()[-1].split(" = ", 1)[1].rstrip(";"))
    model, runtime = assets["model"], assets["runtime"]
    print(f"live demo assets: {out} ({size / 1e6:.0f} MB); the demo downloads "
          f"{(model['http_bytes'] + runtime['http_bytes']) / 1e6:.1f} MB over http, "
          f"{(model['file_bytes'] + runtime['file_bytes']) / 1e6:.1f} MB from disk")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
