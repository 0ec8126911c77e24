"""Interactive demos of the book (ipywidgets).

Two kinds of widget live here:

* :func:`frame_slider` / :func:`mean_filter_slider` (report Fig 3): every frame is rendered up front
  into an ``Image`` widget of a ``Stack``, and the slider is linked to the stack *in the browser*
  (``jslink``). The slider therefore also works in the static HTML book, where no Python kernel runs.
* :func:`inpaint_demo`: a photo, a mask generated from a seed (or uploaded as a PNG) and the fills of
  several methods, recomputed in Python whenever a control changes. It needs a running kernel
  (JupyterLab, Colab); the book shows a static figure next to it.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from inpaintlib import masks
from inpaintlib.metrics import psnr
from inpaintlib.plots import to_image
from inpaintlib.teaching import mean_filter_frame

__all__ = ["png_bytes", "frame_slider", "mean_filter_slider", "inpaint_demo"]


def png_bytes(image: np.ndarray | torch.Tensor) -> bytes:
    """Encode an image ((H, W, 3) uint8 array, or a (3, H, W) float tensor in [0, 1]) as PNG bytes."""
    if isinstance(image, torch.Tensor):
        image = (to_image(image) * 255 + 0.5).astype(np.uint8)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 array or a float tensor in [0, 1], got dtype {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def frame_slider(
    frames: Sequence[np.ndarray | torch.Tensor], labels: Sequence[str], description: str = "frame", caption: str = ""
) -> Any:
    """A slider over pre-rendered frames that works without a kernel (linked in the browser)."""
    import ipywidgets as w  # optional dependency (the book extra), only needed for the widgets

    if len(frames) == 0 or len(frames) != len(labels):
        raise ValueError(f"need one label per frame and at least one frame, got {len(frames)} and {len(labels)}")
    images = [w.Image(value=png_bytes(f), format="png") for f in frames]
    stack = w.Stack(images, selected_index=0)
    slider = w.SelectionSlider(options=list(labels), value=labels[0], description=description,
                               continuous_update=True, style={"description_width": "initial"},
                               layout=w.Layout(width="100%", max_width="420px"))  # fits a phone
    w.jslink((slider, "index"), (stack, "selected_index"))
    children = ([w.HTML(f"<small>{caption}</small>")] if caption else []) + [slider, stack]
    return w.VBox(children)


def mean_filter_slider(sequence: Mapping[str, Any]) -> Any:
    """Slider over the iterations of :func:`inpaintlib.teaching.mean_filter_sequence` (report Fig 3).

    Each frame shows the standard convolution, the partial convolution and the partial convolution's
    mask side by side.
    """
    frames = [mean_filter_frame(sequence, i) for i in range(len(sequence["iterations"]))]
    return frame_slider(frames, [str(i) for i in sequence["iterations"]], description="iterations",
                        caption="left: standard convolution · middle: partial convolution · right: its mask")


def inpaint_demo(
    photos: Sequence[torch.Tensor],
    methods: Mapping[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
    hole_ratio: tuple[float, float] = (0.1, 0.3),
    seed: int = 0,
) -> Any:
    """Pick a photo and a mask, and see every method fill the hole (needs a running kernel).

    ``photos`` are (3, H, W) tensors in [0, 1] of one size; each method maps (image, mask) to the
    completed (3, H, W) image (the interface of :mod:`inpaintlib.classical` and
    ``inpaintlib.inpainters.model_method``). The mask comes from :func:`inpaintlib.masks.irregular_mask`
    with the chosen seed and hole-ratio range, or from an uploaded PNG (white = valid, black = hole).
    """
    import ipywidgets as w  # optional dependency (the book extra), only needed for the widgets

    if not photos:
        raise ValueError("inpaint_demo needs at least one photo")
    size = tuple(photos[0].shape[-2:])
    photo = w.Dropdown(options=[(f"photo {i + 1}", i) for i in range(len(photos))], value=0, description="photo")
    seed_box = w.IntSlider(value=seed, min=0, max=99, description="mask seed")
    ratio = w.FloatRangeSlider(value=hole_ratio, min=0.01, max=0.6, step=0.01, description="hole ratio")
    upload = w.FileUpload(accept=".png", multiple=False, description="mask PNG")
    status = w.HTML()
    names = ["input"] + list(methods) + ["ground truth"]
    tiles = {name: w.Image(format="png", layout=w.Layout(width=f"{size[1]}px")) for name in names}
    titles = {name: w.HTML(f"<b>{name}</b>") for name in names}
    state: dict[str, torch.Tensor | None] = {"uploaded": None}

    def current_mask() -> torch.Tensor:
        if state["uploaded"] is not None:
            return state["uploaded"]
        gen = torch.Generator().manual_seed(int(seed_box.value))
        return masks.irregular_mask(size[0], size[1], hole_ratio=tuple(ratio.value), generator=gen)

    def refresh(*_: Any) -> None:
        image = photos[photo.value]
        mask = current_mask()
        masked = image * mask + (1 - mask) * torch.tensor([1.0, 1.0, 1.0]).view(3, 1, 1)
        tiles["input"].value = png_bytes(masked)
        tiles["ground truth"].value = png_bytes(image)
        for name, method in methods.items():
            done = method(image, mask)
            tiles[name].value = png_bytes(done)
            titles[name].value = f"<b>{name}</b> {psnr(done, image):.1f} dB"
        status.value = f"hole ratio {masks.hole_ratio(mask):.2f}"

    def on_upload(change: Mapping[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        content = files[0]["content"] if isinstance(files, (list, tuple)) else next(iter(files.values()))["content"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "mask.png"
            path.write_bytes(bytes(content))
            try:
                state["uploaded"] = masks.load_mask_png(path, size=size)
            except ValueError as err:
                status.value = f"mask not used: {err}"
                return
        refresh()

    for control in (photo, seed_box, ratio):
        control.observe(lambda change: (state.update(uploaded=None), refresh()), names="value")
    upload.observe(on_upload, names="value")
    refresh()
    grid = w.HBox([w.VBox([titles[n], tiles[n]]) for n in names])
    return w.VBox([w.HBox([photo, seed_box, ratio, upload]), status, grid])
