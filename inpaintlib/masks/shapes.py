"""The two kinds of mask of the report: the Context Encoder's centre square with its overlap band
(§3.1, §4.1) and the PConv U-Net's free-form irregular masks (§4.2).
"""

from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np
import torch

from .check import positive_int

__all__ = ["center_mask", "center_patch_slice", "overlap_band_weights", "irregular_mask"]


def center_mask(image_size: int = 128, hole_size: int = 56) -> torch.Tensor:
    """The Context Encoder's deterministic central hole (report §4.1), polarity 1 = valid, 0 = hole.

    Args:
        image_size: side of the square image (128 in the report).
        hole_size: side of the central square hole (56 in the report: the predicted 64x64 patch
            minus a 4-pixel overlap band on each side).

    Returns:
        float tensor ``(1, image_size, image_size)``: 0 inside the central ``hole_size`` square,
        1 elsewhere.

    Raises:
        ValueError: sizes not positive integers, hole not smaller than the image, or an odd
            difference (the hole could not be centred on whole pixels).
    """
    square = _centred(image_size, hole_size, "hole")
    mask = torch.ones(1, image_size, image_size)
    mask[:, square, square] = 0.0
    return mask


def center_patch_slice(image_size: int = 128, patch_size: int = 64) -> slice:
    """Slice of the central ``patch_size`` square that the Context Encoder predicts (report §3.1, Fig 1).

    The same slice applies to both spatial axes: ``patch = image[..., s, s]`` with
    ``s = center_patch_slice()`` crops the 64x64 ground-truth patch of a 128x128 image (rows and
    columns 32..95). The hole of :func:`center_mask` (1 = valid, 0 = hole) lies inside this patch.

    Raises:
        ValueError: sizes not positive integers, patch not smaller than the image, or an odd
            difference.
    """
    return _centred(image_size, patch_size, "patch")


def _centred(image_size: int, size: int, what: str) -> slice:
    """The slice of a centred ``size`` square in an ``image_size`` image (the sizes checked)."""
    image_size = positive_int(image_size, "image_size")
    size = positive_int(size, f"{what}_size")
    if size >= image_size:
        raise ValueError(f"{what}_size ({size}) must be smaller than image_size ({image_size})")
    if (image_size - size) % 2:
        raise ValueError(
            f"image_size - {what}_size must be even so the {what} is centred on whole pixels; "
            f"got {image_size} - {size} = {image_size - size}"
        )
    start = (image_size - size) // 2
    return slice(start, start + size)


def overlap_band_weights(patch_size: int = 64, overlap: int = 4, band_weight: float = 10.0) -> torch.Tensor:
    """Per-pixel weights of the Context Encoder's reconstruction loss, eq. (3) (report §3.1.1).

    The predicted patch overlaps the known context by ``overlap`` pixels on every side (the patch is
    64x64, the hole of :func:`center_mask` 56x56); errors in that band are weighted ``band_weight``
    (10 in the report) to make the patch blend into its surroundings, errors inside weigh 1. In mask
    terms (1 = valid, 0 = hole) the band is where ``center_mask()`` is 1 inside the patch, the interior
    where it is 0.

    Returns:
        float tensor ``(1, patch_size, patch_size)``.

    Raises:
        ValueError: ``patch_size`` not a positive integer, ``overlap`` negative or so wide that no
            interior is left, ``band_weight`` not a positive finite number.
    """
    patch_size = positive_int(patch_size, "patch_size")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative integer, got {overlap!r}")
    if 2 * overlap >= patch_size:
        raise ValueError(
            f"2 * overlap ({2 * overlap}) must be smaller than patch_size ({patch_size}) so an interior remains"
        )
    if not math.isfinite(band_weight) or band_weight <= 0:
        raise ValueError(f"band_weight must be a positive finite number, got {band_weight!r}")
    weights = torch.full((1, patch_size, patch_size), float(band_weight))
    inner = slice(overlap, patch_size - overlap)
    weights[:, inner, inner] = 1.0
    return weights


class _Uniforms:
    """Uniform [0, 1) numbers drawn from torch's RNG in chunks (one torch call per chunk is fast)."""

    def __init__(self, generator: torch.Generator | None, chunk: int = 128) -> None:
        self.generator = generator
        self.chunk = chunk
        self.values: list[float] = []
        self.next = 0

    def __call__(self) -> float:
        if self.next == len(self.values):
            self.values = torch.rand(self.chunk, generator=self.generator, dtype=torch.float64).tolist()
            self.next = 0
        value = self.values[self.next]
        self.next += 1
        return value


def _count_bounds(lo: float, hi: float, pixels: int) -> tuple[int, int]:
    """Smallest and largest hole-pixel counts c with lo <= c / pixels <= hi (float comparison as in hole_ratio)."""
    low = math.ceil(lo * pixels)
    while low > 0 and (low - 1) / pixels >= lo:
        low -= 1
    while low / pixels < lo:
        low += 1
    high = math.floor(hi * pixels)
    while high < pixels and (high + 1) / pixels <= hi:
        high += 1
    while high / pixels > hi:
        high -= 1
    return low, high


def _draw_stroke(canvas: np.ndarray, u: Callable[[], float], scale: float) -> None:
    # A thick random walk: the heading turns by a bounded random angle at each vertex, so strokes
    # bend like brush strokes instead of zig-zagging.
    h, w = canvas.shape
    thickness = max(1, round((5 + 19 * u()) * scale))
    x, y = u() * (w - 1), u() * (h - 1)
    heading = 2 * math.pi * u()
    points = [(x, y)]
    for _ in range(2 + int(8 * u())):
        heading += (u() - 0.5) * 2.4
        step = (10 + 30 * u()) * scale
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
        # Bounce off the borders (clipping would make strokes crawl along the image edge).
        if x < 0 or x > w - 1:
            x, heading = (-x if x < 0 else 2 * (w - 1) - x), math.pi - heading
        if y < 0 or y > h - 1:
            y, heading = (-y if y < 0 else 2 * (h - 1) - y), -heading
        x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
        points.append((x, y))
    polyline = np.round(np.asarray(points)).astype(np.int32)
    cv2.polylines(canvas, [polyline], False, 1, thickness=thickness, lineType=cv2.LINE_8)


def _draw_ellipse(canvas: np.ndarray, u: Callable[[], float], scale: float) -> None:
    h, w = canvas.shape
    center = (int(u() * w), int(u() * h))
    axes = (max(1, round((4 + 30 * u()) * scale)), max(1, round((4 + 30 * u()) * scale)))
    cv2.ellipse(canvas, center, axes, 180.0 * u(), 0.0, 360.0, 1, thickness=-1, lineType=cv2.LINE_8)


def _draw_box(canvas: np.ndarray, u: Callable[[], float], scale: float) -> None:
    h, w = canvas.shape
    bw, bh = max(1, round((6 + 44 * u()) * scale)), max(1, round((6 + 44 * u()) * scale))
    x0, y0 = int(u() * w) - bw // 2, int(u() * h) - bh // 2
    cv2.rectangle(canvas, (x0, y0), (x0 + bw - 1, y0 + bh - 1), 1, thickness=-1)


def _grow_holes(canvas: np.ndarray, target: int, count: int, u: Callable[[], float]) -> None:
    """Dilate the hole ring by ring until exactly ``target`` hole pixels (fallback that always terminates)."""
    h, w = canvas.shape
    if count == 0:
        canvas[int(u() * h), int(u() * w)] = 1
        count = 1
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    while count < target:
        ring = np.flatnonzero(cv2.dilate(canvas, kernel) > canvas)
        need = target - count
        canvas.reshape(-1)[ring[:need]] = 1  # a connected grid: a proper non-empty subset always has a ring
        count += min(need, ring.size)


def irregular_mask(
    height: int,
    width: int,
    hole_ratio: tuple[float, float] = (0.01, 0.6),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random free-form mask (1 = valid, 0 = hole) whose hole ratio lies in ``hole_ratio``.

    The report's U-Net (§3.2, §4.2) is trained on irregular masks generated afresh for each sample,
    in the style of Liu et al.: thick random-walk brush strokes, ellipses and boxes. A target ratio
    is drawn uniformly in ``[lo, hi]``; shapes are added until the hole reaches it. A shape that
    would push the ratio above ``hi`` is undone and later shapes are drawn smaller; if 400 shapes do
    not reach the target, the hole is grown by dilation to exactly the target, so the function
    always terminates with ``lo <= ratio <= hi``.

    Shape sizes scale with ``sqrt(height * width) / 256`` so masks look alike from 64 to 512 pixels,
    and grow a little with the target ratio (large holes are made of larger shapes).

    Args:
        height, width: mask size in pixels.
        hole_ratio: inclusive range ``(lo, hi)`` of the fraction of hole pixels, ``0 <= lo < hi <= 1``.
        generator: source of all randomness (torch's default RNG when ``None``, which DataLoader
            seeds per worker); a seeded generator gives the same mask on every run and platform.

    Returns:
        float tensor ``(1, height, width)`` of 0s and 1s.

    Raises:
        ValueError: non-positive sizes, ``lo``/``hi`` out of order or outside [0, 1], or a range so
            narrow that no whole number of pixels falls inside it.
    """
    height = positive_int(height, "height")
    width = positive_int(width, "width")
    try:
        lo, hi = (float(v) for v in hole_ratio)
    except (TypeError, ValueError):
        raise ValueError(f"hole_ratio must be a pair (lo, hi) of numbers, got {hole_ratio!r}") from None
    if not (0.0 <= lo < hi <= 1.0):
        raise ValueError(f"hole_ratio must satisfy 0 <= lo < hi <= 1, got ({lo}, {hi})")
    pixels = height * width
    low_count, high_count = _count_bounds(lo, hi, pixels)
    if low_count > high_count:
        raise ValueError(
            f"hole_ratio range ({lo}, {hi}) contains no whole number of pixels for a "
            f"{height}x{width} mask (one pixel is {1 / pixels:.3g}); widen the range"
        )

    u = _Uniforms(generator)
    target = min(low_count + int(u() * (high_count - low_count + 1)), high_count)
    scale = math.sqrt(pixels) / 256.0 * (0.7 + target / pixels)
    canvas = np.zeros((height, width), dtype=np.uint8)  # 1 marks a hole while drawing
    backup = np.empty_like(canvas)
    count = 0
    shrink = 1.0
    for _ in range(400):
        if count >= target:
            break
        np.copyto(backup, canvas)
        kind = u()
        draw = _draw_stroke if kind < 0.6 else _draw_ellipse if kind < 0.85 else _draw_box
        draw(canvas, u, scale * shrink)
        new_count = cv2.countNonZero(canvas)
        if new_count > high_count:  # overshoot: undo and try smaller shapes
            np.copyto(canvas, backup)
            shrink *= 0.7
        else:
            count = new_count
    if count < target:
        _grow_holes(canvas, target, count, u)
    # Convert in numpy: torch's parallel bool->float cast wakes OpenMP threads, ~100x slower here.
    return torch.from_numpy(np.subtract(1.0, canvas, dtype=np.float32)).unsqueeze(0)  # (1, H, W), 1 = valid


