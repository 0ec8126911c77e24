"""Masks as black-and-white PNG files: white = valid (kept), black = hole, the library's polarity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from inpaintlib.images import open_image

from .check import validate_mask

__all__ = ["save_mask_png", "load_mask_png"]


def save_mask_png(mask: torch.Tensor, path: str | Path) -> Path:
    """Write a ``(1, H, W)`` binary mask as an 8-bit greyscale PNG: 255 = valid (1), 0 = hole (0).

    Parent folders are created. Returns the path written.
    """
    validate_mask(mask)
    if mask.ndim != 3:
        raise ValueError(f"save_mask_png writes one mask of shape (1, H, W), got {tuple(mask.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (mask[0].detach().cpu() != 0).numpy().astype(np.uint8) * 255
    Image.fromarray(pixels).save(path, format="PNG")  # 2-D uint8 -> mode "L"
    return path


def _to_uint8_gray(image: Image.Image) -> np.ndarray:
    """Any Pillow image -> (H, W) uint8 luminance; 16-bit and float modes are rescaled, not clipped."""
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8) * 255
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.float64)
        return np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        return np.clip(np.round(np.nan_to_num(values)), 0, 255).astype(np.uint8)
    if image.mode != "L":
        image = image.convert("L")  # transparency is ignored: luminance decides
    return np.asarray(image, dtype=np.uint8)


def _check_not_misencoded(gray: np.ndarray, image: Image.Image, path: str | Path) -> None:
    """Refuse two files that look like masks but say something else than their luminance does: a 0/1
    array saved as 8-bit (all near-black, so "all hole"), and a hole drawn only in the alpha channel."""
    if gray.size and int(gray.max()) == 1:
        raise ValueError(f"mask {path} holds only the values 0 and 1 (a 0/1 array saved as 8-bit?): save it with "
                         "255 = valid and 0 = hole, e.g. multiply it by 255")
    if "A" in image.getbands() and bool((gray >= 128).all()):
        alpha = np.asarray(image.getchannel("A"))
        if bool((alpha < 128).any()):
            raise ValueError(f"mask {path} draws its hole in the alpha (transparency) channel only, which is ignored: "
                             "the brightness decides, so paint the hole black (0) on white (255)")


def load_mask_png(path: str | Path, size: int | tuple[int, int] | None = None, invert: bool = False) -> torch.Tensor:
    """Read a mask image (white = valid -> 1, black = hole -> 0) as a ``(1, H, W)`` float tensor.

    Any mode Pillow reads is accepted (1-bit, greyscale, 16-bit, palette, RGB, RGBA -- alpha is
    ignored, luminance decides) and thresholded at 128. The EXIF orientation is applied, as for images,
    so the hole lies where a viewer shows it. A 0/1-valued file and a hole drawn only in the alpha
    channel are refused with what to do (they are not inverted masks). A file is refused when more than 1 % of
    its pixels are grey (between 33 and 222): an anti-aliased drawing or a photo is not a mask, and
    guessing where its hole ends would silently change results.

    Args:
        path: the image file.
        size: expected size, an int for a square or ``(height, width)``; a mismatch raises --
            masks are never resized silently.
        invert: set for datasets that store 1 (white) = hole; the result still has 1 = valid.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, grey (non-binary) content, or a size other than ``size``;
            every message names the file.
    """
    with open_image(Path(path), "mask") as image:  # size limit checked from the header, errors name the file
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # oriented as its photo is (images.decode does the same)
        gray = _to_uint8_gray(image)
        _check_not_misencoded(gray, image, path)
    height, width = gray.shape
    if size is not None:
        expected = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(expected) != 2:
            raise ValueError(f"size must be an int or (height, width), got {size!r}")
        if (height, width) != tuple(int(s) for s in expected):
            raise ValueError(
                f"mask {path} is {height}x{width} (HxW) but {expected[0]}x{expected[1]} was expected; "
                f"masks are not resized automatically -- resize it with nearest-neighbour interpolation"
            )
    grey = int(np.count_nonzero((gray > 32) & (gray < 223)))
    if grey > 0.01 * gray.size:
        raise ValueError(
            f"mask {path} is not black and white: {grey} of {gray.size} pixels "
            f"({grey / gray.size:.1%}) are grey (33..222). Expected 0 = hole and 255 = valid; "
            f"anti-aliased edges or a photograph? Threshold the file first."
        )
    valid = gray >= 128
    if invert:
        valid = ~valid
    return torch.from_numpy(valid.astype(np.float32)).unsqueeze(0)
