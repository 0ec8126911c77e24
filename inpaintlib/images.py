"""Reading one image file robustly: any format Pillow reads (8/16-bit, grey, palette, alpha, EXIF
orientation) as a float tensor ``(3, H, W)`` in [0, 1], with Pillow's decompression-bomb guard kept on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["IMAGE_EXTENSIONS", "CACHE_LIMIT_BYTES", "DEFAULT_MAX_PIXELS", "pixel_limit", "open_image", "load_image", "decode", "decoded_bytes", "check_readable",
           "as_float_rgb"]

#: File suffixes treated as images (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)

DEFAULT_MAX_PIXELS = 50_000_000
"""Images and masks larger than this are refused from their header, before any pixel is decoded (a 290 KB
PNG can hold 100 megapixels and take 3.4 GB to decode). ``INPAINTLIB_MAX_PIXELS`` changes it; Pillow's own
decompression-bomb guard stays on as well."""


def pixel_limit() -> int:
    """The pixel limit in force: ``INPAINTLIB_MAX_PIXELS`` if set, else :data:`DEFAULT_MAX_PIXELS`."""
    text = os.environ.get("INPAINTLIB_MAX_PIXELS")
    if text is None:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ValueError(f"INPAINTLIB_MAX_PIXELS must be a positive integer, got {text!r}")
    return limit


class _OverPixelLimit(ValueError):
    """An image refused from its header by :func:`pixel_limit` (its message already names the file)."""


@contextlib.contextmanager
def open_image(path: Path, what: str = "image") -> Iterator[Image.Image]:
    """Open ``path`` with Pillow (header only) after checking it exists and is within :func:`pixel_limit`;
    every read error becomes a ``ValueError`` that names the file (``what`` says what it was meant to be)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with Image.open(path) as image:
            pixels, limit = image.width * image.height, pixel_limit()
            if pixels > limit:
                raise _OverPixelLimit(
                    f"{what} {path} is {image.width}x{image.height} = {pixels / 1e6:.1f} megapixels, over the "
                    f"limit of {limit / 1e6:g} megapixels (checked before decoding; set INPAINTLIB_MAX_PIXELS "
                    "to allow larger files)"
                )
            yield image
    except _OverPixelLimit:
        raise
    except _READ_ERRORS as error:
        raise ValueError(f"cannot read {what} {path}: {type(error).__name__}: {error}") from error


def _pixels(image: Image.Image) -> np.ndarray:
    """Pillow image (any mode) -> (H, W, C) array, C = 1 (grey) or 3 (RGB), still in its storage type.

    uint8 (0..255), uint16 (0..65535) or float32 (0..1); :func:`as_float_rgb` finishes the job
    after cropping, so only the pixels actually used are converted.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale (PNG/TIFF): keep the full 0..65535 precision.
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)[:, :, None]
    if mode == "F":
        return np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0.0, 1.0)[:, :, None]
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        # Transparent pixels have no colour of their own: show them over white, as a viewer would.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode in ("L", "1"):
        return np.asarray(image.convert("L"))[:, :, None]
    elif mode != "RGB":
        image = image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV
    return np.asarray(image)


def as_float_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 1 or 3) uint8/uint16/float32 -> (H, W, 3) float32 in [0, 1]."""
    if pixels.dtype == np.uint8:
        values = pixels.astype(np.float32) * np.float32(1 / 255)
    elif pixels.dtype == np.uint16:
        values = pixels.astype(np.float32) * np.float32(1 / 65535)
    else:
        values = pixels.astype(np.float32, copy=False)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return values


def decode(path: Path) -> np.ndarray:
    """Decode ``path`` upright into :func:`_pixels` form; errors name the file."""
    with open_image(path) as image:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # rotate phone photos upright
        return _pixels(image)


def load_image(path: str | Path) -> torch.Tensor:
    """Read a photo as a float tensor ``(3, H, W)`` in [0, 1], upright and in RGB.

    Handles every mode Pillow decodes: greyscale and 1-bit images are repeated over the three
    channels; palette and CMYK images are converted to RGB; images with transparency (RGBA, LA,
    palette + transparency) are composited over white; 16-bit greyscale PNG/TIFF (Pillow modes
    ``I;16`` and ``I``) is divided by 65535 (full precision, not clipped at 255); 32-bit float
    images are taken as [0, 1] and clipped. 16-bit colour PNGs are reduced to 8 bits per channel by
    Pillow, still correctly scaled to [0, 1]. The EXIF orientation tag is applied, so phone photos
    come out upright. Pillow's decompression-bomb limit stays in force.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded (not an image, truncated, over :func:`pixel_limit`);
            the message names the file.
    """
    array = as_float_rgb(decode(Path(path)))  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))  # (3, H, W)


CACHE_LIMIT_BYTES = 2 * 1024**3  # PhotoFolder(cache="auto") keeps decoded photos up to this size in memory


def decoded_bytes(path: Path) -> int:
    """Approximate memory of a decoded photo (from its header only)."""
    with Image.open(path) as image:
        return image.width * image.height * max(3, len(image.getbands()))


def check_readable(path: Path) -> str | None:
    """Cheap validity check (header parse + Pillow's verify, no full decode); returns a reason or None."""
    try:
        with Image.open(path) as image:
            image.verify()
    except _READ_ERRORS as error:
        return f"{type(error).__name__}: {error}"
    return None
