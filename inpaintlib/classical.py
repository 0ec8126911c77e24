"""Classical (non-learned) inpainting behind the library's method interface.

A *method* is any callable ``method(image, mask) -> completed`` with

* ``image``: float tensor (3, H, W) in [0, 1];
* ``mask``: float tensor (1, H, W), **1 = valid (known) pixel, 0 = hole** -- the report's binary mask M (§3);
* ``completed``: float tensor (3, H, W) in [0, 1] that equals ``image`` wherever ``mask == 1``.

The last point is the *composite* rule: a method only decides the hole, the known pixels are copied back,
so every method is scored on the same footing as the networks' composites (report §3.2.2, x_comp).

The baselines here are the ones the evaluation puts next to the networks:

* :func:`mean_fill` -- every hole pixel gets the mean colour of the known pixels (the floor);
* :func:`telea` -- OpenCV's fast-marching method (Telea, 2004);
* :func:`navier_stokes` -- OpenCV's fluid-dynamics method (Bertalmio, Bertozzi and Sapiro, 2001);
* :func:`biharmonic` -- scikit-image's biharmonic-equation fill (Damelin and Hoang, 2018);
* :func:`biharmonic_cg` -- the same equation solved coarse to fine in PyTorch (:mod:`inpaintlib.smooth_fill`),
  the fill the PConv U-Net's head can read; not among the evaluation's default methods.

OpenCV and scikit-image both use the *opposite* mask polarity to ours: their masks mark the hole
(255 / True = pixel to fill). The conversion happens in :func:`opencv_inputs` and :func:`biharmonic`
and nowhere else; ``tests/test_evaluate.py`` checks it.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic

from inpaintlib.masks import check_pair
from inpaintlib.smooth_fill import biharmonic_fill

__all__ = [
    "opencv_inputs",
    "mean_fill",
    "opencv_inpaint",
    "telea",
    "navier_stokes",
    "biharmonic",
    "biharmonic_cg",
]


def _arrays(image: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair (:func:`masks.check_pair`) and return it as numpy: (H, W, 3) image and (H, W) bool hole map."""
    hole = check_pair(image, mask)
    rgb = image.detach().cpu().numpy().transpose(1, 2, 0)  # (H, W, 3), the image's own float dtype
    return rgb, hole


def _finish(filled: np.ndarray, rgb: np.ndarray, hole: np.ndarray, image: torch.Tensor) -> torch.Tensor:
    """Composite in numpy (known pixels copied bit for bit), back to a (3, H, W) tensor like ``image``."""
    out = rgb.copy()  # (H, W, 3)
    out[hole] = np.clip(filled[hole], 0.0, 1.0)
    result = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))  # (3, H, W)
    return result.to(device=image.device, dtype=image.dtype)


def mean_fill(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill every hole pixel with the per-channel mean of the known pixels: the floor any method must beat."""
    rgb, hole = _arrays(image, mask)
    mean = rgb[~hole].astype(np.float64).mean(axis=0)  # (3,)
    return _finish(np.broadcast_to(mean, rgb.shape), rgb, hole, image)


def opencv_inputs(image: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Convert to what ``cv2.inpaint`` wants: (H, W, 3) uint8 and an (H, W) uint8 mask with **255 = hole**.

    The polarity flips here: our mask has 1 = valid, OpenCV's has non-zero = pixel to fill.
    Passing our mask unconverted would make OpenCV repaint the whole known image from the hole's border.
    """
    rgb, hole = _arrays(image, mask)
    return _opencv_arrays(rgb, hole)


def _opencv_arrays(rgb: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rgb8 = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)  # (H, W, 3)
    return rgb8, hole.astype(np.uint8) * 255  # (H, W), 255 = hole


def opencv_inpaint(image: torch.Tensor, mask: torch.Tensor, algorithm: str = "telea", radius: int = 5) -> torch.Tensor:
    """Inpaint with ``cv2.inpaint`` (``algorithm`` "telea" or "ns"), then composite.

    OpenCV works on 8-bit images, so the hole is filled at 1/255 precision; the known pixels come back
    unchanged from the float input because of the composite. ``radius`` is the neighbourhood (pixels) each
    filled pixel looks at; 3 and 5 are the usual choices.
    """
    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
    if algorithm not in flags:
        raise ValueError(f"algorithm must be 'telea' or 'ns', got {algorithm!r}")
    if int(radius) < 1:
        raise ValueError(f"radius must be a positive number of pixels, got {radius}")
    rgb, hole = _arrays(image, mask)
    rgb8, hole8 = _opencv_arrays(rgb, hole)
    filled = cv2.inpaint(rgb8, hole8, float(radius), flags[algorithm])  # (H, W, 3) uint8
    return _finish(filled / 255.0, rgb, hole, image)


def telea(image: torch.Tensor, mask: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """OpenCV Telea (fast marching from the hole's border inwards), composited."""
    return opencv_inpaint(image, mask, "telea", radius)


def navier_stokes(image: torch.Tensor, mask: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """OpenCV Navier--Stokes (isophotes continued into the hole like a fluid flow), composited."""
    return opencv_inpaint(image, mask, "ns", radius)


def biharmonic(image: torch.Tensor, mask: torch.Tensor, split_into_regions: bool = False) -> torch.Tensor:
    """scikit-image ``inpaint_biharmonic`` (smooth biharmonic fill of each channel), composited.

    scikit-image marks the hole with True, so the boolean mask passed is ``mask == 0``.
    ``split_into_regions=True`` solves each connected hole separately; at 256 px with the evaluation masks
    the plain solve already takes well under a second, so it is off by default.
    """
    rgb, hole = _arrays(image, mask)
    filled = inpaint_biharmonic(
        np.clip(rgb, 0.0, 1.0).astype(np.float64), hole, channel_axis=-1, split_into_regions=split_into_regions
    )
    return _finish(filled, rgb, hole, image)


def biharmonic_cg(image: torch.Tensor, mask: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """:func:`inpaintlib.smooth_fill.biharmonic_fill` (``iterations`` CG steps per pyramid level), composited."""
    check_pair(image, mask)
    filled = biharmonic_fill(image[None].float(), mask[None].float(), iterations)[0]  # (3, H, W)
    return filled.to(image.dtype)
