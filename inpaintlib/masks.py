"""Binary inpainting masks: the Context Encoder's centre square, free-form masks, buckets and PNG I/O.

Polarity, here and in the whole library: **1 = valid (known) pixel, 0 = hole** -- the ``M`` of the
report's eq. (3) and eqs. (6)-(12). A single mask is a float tensor of shape ``(1, H, W)``, a batch
``(N, 1, H, W)``.

Two kinds of mask are used in the report:

* the Context Encoder's deterministic central square (§3.1, §4.1): the network predicts a 64x64 patch
  of a 128x128 image, the hole is the central 56x56 square, and the 4-pixel band between the two is
  known context whose reconstruction error is weighted 10x (the paragraph after eq. (5));
* the Partial-Convolution U-Net's irregular masks, generated afresh for every training sample (§4.2)
  and grouped by hole ratio into the buckets of Liu et al. for evaluation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "BUCKETS",
    "BUCKET_LABELS",
    "bucket_label",
    "bucket_of",
    "bucket_order",
    "bucket_sort_key",
    "evaluation_assignment",
    "center_mask",
    "center_patch_slice",
    "check_mask_not_degenerate",
    "check_pair",
    "composite",
    "evaluation_masks",
    "hole_ratio",
    "irregular_mask",
    "load_mask_png",
    "overlap_band_weights",
    "save_mask_png",
    "validate_mask",
]

#: Hole-ratio buckets of the Partial-Convolution evaluation protocol (Liu et al., cited in report §3.2).
#: A ratio r belongs to bucket (lo, hi) when lo <= r < hi; the last bucket also includes its upper end.
BUCKETS: list[tuple[float, float]] = [(0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)]

#: Labels of :data:`BUCKETS` in order: ``"0.01-0.1"``, ``"0.1-0.2"``, ...
BUCKET_LABELS: list[str] = [f"{lo:g}-{hi:g}" for lo, hi in BUCKETS]


# ----------------------------------------------------------------------------------------------------
# Context Encoder geometry (report §3.1, §4.1)
# ----------------------------------------------------------------------------------------------------


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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
    image_size = _positive_int(image_size, "image_size")
    hole_size = _positive_int(hole_size, "hole_size")
    if hole_size >= image_size:
        raise ValueError(f"hole_size ({hole_size}) must be smaller than image_size ({image_size})")
    if (image_size - hole_size) % 2:
        raise ValueError(
            f"image_size - hole_size must be even so the hole is centred on whole pixels; "
            f"got {image_size} - {hole_size} = {image_size - hole_size}"
        )
    start = (image_size - hole_size) // 2
    mask = torch.ones(1, image_size, image_size)
    mask[:, start : start + hole_size, start : start + hole_size] = 0.0
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
    image_size = _positive_int(image_size, "image_size")
    patch_size = _positive_int(patch_size, "patch_size")
    if patch_size >= image_size:
        raise ValueError(f"patch_size ({patch_size}) must be smaller than image_size ({image_size})")
    if (image_size - patch_size) % 2:
        raise ValueError(
            f"image_size - patch_size must be even so the patch is centred on whole pixels; "
            f"got {image_size} - {patch_size} = {image_size - patch_size}"
        )
    start = (image_size - patch_size) // 2
    return slice(start, start + patch_size)


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
    patch_size = _positive_int(patch_size, "patch_size")
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


# ----------------------------------------------------------------------------------------------------
# Hole ratio and buckets
# ----------------------------------------------------------------------------------------------------


def _hole_pixels(mask: torch.Tensor) -> torch.Tensor:
    return ~mask if mask.dtype == torch.bool else mask < 0.5


def hole_ratio(mask: torch.Tensor) -> float | torch.Tensor:
    """Fraction of hole pixels (value 0; 1 = valid) in a mask.

    Args:
        mask: ``(H, W)`` or ``(1, H, W)`` for one mask, ``(N, 1, H, W)`` for a batch. Values below
            0.5 count as hole (for a binary mask: exactly the zeros).

    Returns:
        a Python float for one mask, a float64 tensor ``(N,)`` for a batch. The ratio is the exact
        integer count divided by ``H * W``, so it can be compared with bucket limits safely.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 2 or (mask.ndim == 3 and mask.shape[0] == 1):
        if mask.numel() == 0:
            raise ValueError("mask is empty")
        # numpy: no thread-pool wake-up for one small mask (numpy has no bfloat16)
        if mask.device.type == "cpu" and mask.dtype != torch.bfloat16:
            values = mask.detach().numpy()
            holes = ~values if values.dtype == np.bool_ else values < 0.5
            return int(np.count_nonzero(holes)) / mask.numel()
        return int(_hole_pixels(mask).sum()) / mask.numel()
    if mask.ndim == 4 and mask.shape[1] == 1:
        pixels = mask.shape[-2] * mask.shape[-1]
        if pixels == 0:
            raise ValueError("mask is empty")
        counts = _hole_pixels(mask).flatten(1).sum(dim=1)  # (N,) int64
        return counts.to(torch.float64) / pixels
    raise ValueError(f"mask must have shape (H, W), (1, H, W) or (N, 1, H, W); got {tuple(mask.shape)}")


def bucket_label(ratio: float) -> str | None:
    """Label of the :data:`BUCKETS` entry holding a hole ratio, e.g. ``0.15 -> "0.1-0.2"``.

    Buckets are half-open, ``lo <= ratio < hi``, except that the last one also holds 0.6. Ratios
    outside ``[0.01, 0.6]`` give ``None``. (Hole ratio = fraction of 0 pixels; 1 = valid, 0 = hole.)
    """
    ratio = float(ratio)
    for (lo, hi), label in zip(BUCKETS, BUCKET_LABELS):
        if lo <= ratio < hi:
            return label
    if ratio == BUCKETS[-1][1]:
        return BUCKET_LABELS[-1]
    return None


# ----------------------------------------------------------------------------------------------------
# Irregular masks (report §4.2)
# ----------------------------------------------------------------------------------------------------


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
    height = _positive_int(height, "height")
    width = _positive_int(width, "width")
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


def evaluation_masks(
    size: int | tuple[int, int] = 256, per_bucket: int = 10, seed: int = 0
) -> list[tuple[str, torch.Tensor]]:
    """A fixed evaluation set of irregular masks (1 = valid, 0 = hole), ``per_bucket`` per hole-ratio bucket.

    Follows the bucketed protocol of Liu et al. (report §3.2, §4.2): for each bucket of
    :data:`BUCKETS` the masks' hole ratios satisfy ``bucket_label(hole_ratio(mask)) == label``.
    Mask ``i`` of bucket ``b`` comes from a generator seeded with ``(seed, b, i)`` alone, so the set is
    identical across calls and processes, and a larger ``per_bucket`` extends a smaller one.

    Returns:
        list of ``(label, mask)`` with mask ``(1, H, W)``, bucket by bucket in :data:`BUCKETS` order.
    """
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"size must be an int or a pair (height, width), got {size!r}")
        height, width = _positive_int(size[0], "height"), _positive_int(size[1], "width")
    else:
        height = width = _positive_int(size, "size")
    per_bucket = _positive_int(per_bucket, "per_bucket")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    pixels = height * width
    masks = []
    for b, ((lo, hi), label) in enumerate(zip(BUCKETS, BUCKET_LABELS)):
        # Buckets are half-open: keep the ratio strictly below hi, except for the closed last bucket.
        top = math.ceil(hi * pixels)
        while top / pixels > hi or (b < len(BUCKETS) - 1 and top / pixels >= hi):
            top -= 1
        for i in range(per_bucket):
            generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + b * 10_007 + i)
            masks.append((label, irregular_mask(height, width, (lo, top / pixels), generator=generator)))
    return masks


def bucket_of(ratio: float) -> str:
    """Bucket label of a hole ratio: "0.1-0.2" style inside :data:`BUCKETS`, "<0.01" or ">0.6" outside."""
    label = bucket_label(float(ratio))
    if label is not None:
        return label
    low, high = BUCKETS[0][0], BUCKETS[-1][1]
    return f"<{low:g}" if ratio < low else f">{high:g}"


def bucket_order() -> list[str]:
    low, high = BUCKETS[0][0], BUCKETS[-1][1]
    return [f"<{low:g}", *BUCKET_LABELS, f">{high:g}"]


def bucket_sort_key(label: str) -> int:
    order = bucket_order()
    return order.index(label) if label in order else len(order)


def evaluation_assignment(size: int, per_image: int, seed: int) -> Callable[[int], list[tuple[str, torch.Tensor]]]:
    """The evaluation protocol (used by ``evaluate`` and by training's ``metrics.json``): deterministic cycling over the fixed bucketed set: image i gets ``per_image`` masks from different buckets.

    Masks are named ``"<bucket>#<k>"``: the k-th mask of that bucket in ``evaluation_masks(size, seed=seed)``.
    """
    by_bucket: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for _, m in evaluation_masks(size, seed=seed):
        bucket = bucket_of(hole_ratio(m))
        group = by_bucket.setdefault(bucket, [])
        group.append((f"{bucket}#{len(group)}", m))
    groups = [by_bucket[b] for b in bucket_order() if b in by_bucket]
    if not groups:
        raise ValueError("evaluation_masks returned no masks")

    def assign(i: int) -> list[tuple[str, torch.Tensor]]:
        out = []
        for j in range(min(per_image, sum(len(g) for g in groups))):
            k = i * per_image + j
            group = groups[k % len(groups)]
            out.append(group[(k // len(groups)) % len(group)])
        return out

    return assign


# ----------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------


def validate_mask(mask: torch.Tensor, like: torch.Tensor | None = None, name: str = "mask") -> None:
    """Check that ``mask`` is a binary mask (1 = valid, 0 = hole) of shape ``(1, H, W)`` or ``(N, 1, H, W)``.

    Args:
        mask: the tensor to check (float, integer or bool).
        like: optional image ``(C, H, W)`` or ``(N, C, H, W)`` the mask will be applied to: the
            spatial sizes must match, and batch sizes too when both are batched (a mask batch of 1
            broadcasts).
        name: how the mask is called in error messages.

    Raises:
        ValueError: not a tensor, wrong number of dimensions or channels, values other than 0 and 1
            (the message counts them), or a size mismatch with ``like``.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if not ((mask.ndim == 3 and mask.shape[0] == 1) or (mask.ndim == 4 and mask.shape[1] == 1)):
        hint = " (add a channel axis with mask[None])" if mask.ndim == 2 else ""
        raise ValueError(
            f"{name} must have shape (1, H, W) or (N, 1, H, W) -- one channel, 1 = valid, 0 = hole; "
            f"got {tuple(mask.shape)}{hint}"
        )
    if mask.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        bad = ~((mask == 0) | (mask == 1))
        n_bad = int(bad.sum())
        if n_bad:
            example = mask[bad][0].item()
            raise ValueError(
                f"{name} must be binary (1 = valid, 0 = hole): {n_bad} of {mask.numel()} values are "
                f"neither 0 nor 1 (e.g. {example!r}); threshold it, e.g. (mask > 0.5).float()"
            )
    if like is not None:
        if not isinstance(like, torch.Tensor) or like.ndim not in (3, 4):
            shape = tuple(like.shape) if isinstance(like, torch.Tensor) else type(like).__name__
            raise ValueError(f"the image for {name} must be a (C, H, W) or (N, C, H, W) tensor, got {shape}")
        if tuple(mask.shape[-2:]) != tuple(like.shape[-2:]):
            raise ValueError(
                f"{name} is {mask.shape[-2]}x{mask.shape[-1]} (HxW) but the image is "
                f"{like.shape[-2]}x{like.shape[-1]}; they must match"
            )
        if mask.ndim == 4 and like.ndim == 4 and mask.shape[0] not in (1, like.shape[0]):
            raise ValueError(
                f"{name} holds {mask.shape[0]} masks but the image batch holds {like.shape[0]} images; "
                f"expected {like.shape[0]} masks or 1"
            )
        if mask.ndim == 4 and like.ndim == 3 and mask.shape[0] != 1:
            raise ValueError(f"{name} holds {mask.shape[0]} masks for a single (C, H, W) image; expected 1")


def check_mask_not_degenerate(mask: torch.Tensor, name: str = "mask") -> None:
    """Raise ``ValueError`` when a mask (1 = valid, 0 = hole) is all hole or has no hole at all.

    An all-hole mask leaves nothing known to inpaint from; an all-valid mask leaves nothing to
    inpaint (hole metrics are then undefined). Kept apart from :func:`validate_mask` so callers such
    as the evaluation can report and skip such masks. For a batch every mask is checked and the
    message names the offending indices. The shape and values are validated first.
    """
    validate_mask(mask, name=name)
    batch = mask if mask.ndim == 4 else mask.unsqueeze(0)
    ratios = hole_ratio(batch)
    all_hole = torch.nonzero(ratios == 1.0).flatten().tolist()
    no_hole = torch.nonzero(ratios == 0.0).flatten().tolist()
    where = (lambda idx: "") if mask.ndim == 3 else (lambda idx: f" (indices {idx[:10]})")
    if all_hole:
        raise ValueError(f"{name} is entirely hole (all 0){where(all_hole)}: no known pixel to inpaint from")
    if no_hole:
        raise ValueError(f"{name} has no hole (all 1 = valid){where(no_hole)}: nothing to inpaint")


def check_pair(image: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Raise ``ValueError`` unless ``image`` is a float (3, H, W) and ``mask`` a binary (1, H, W) with a hole.

    A mask without any hole or without any known pixel has nothing to inpaint from or to, so both are
    refused here rather than producing a meaningless number later. Returns the (H, W) bool hole map.
    The checks run in numpy on purpose: a dozen tiny torch ops cost more than OpenCV's whole fill on a
    busy 2-core machine (each wakes torch's thread pool).
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a float tensor of shape (3, H, W) in [0, 1], got {got}")
    if not isinstance(mask, torch.Tensor) or mask.ndim != 3 or mask.shape[0] != 1:
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a tensor of shape (1, H, W) with 1 = valid, 0 = hole, got {got}")
    if mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"mask is {mask.shape[-1]}x{mask.shape[-2]} (WxH) but the image is "
            f"{image.shape[-1]}x{image.shape[-2]}; they must have the same size"
        )
    m = mask.detach().cpu().numpy()[0]  # (H, W)
    hole = m == 0
    n_hole = int(np.count_nonzero(hole))
    if n_hole + int(np.count_nonzero(m == 1)) != m.size:
        raise ValueError("mask must be binary (only 0 = hole and 1 = valid), found other values")
    if n_hole == 0:
        raise ValueError("mask has no hole (every pixel is valid): nothing to inpaint")
    if n_hole == m.size:
        raise ValueError("mask is all hole (no valid pixel): nothing to inpaint from")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor with values in [0, 1], got dtype {image.dtype}")
    return hole


def composite(prediction: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from ``image``, hole pixels from ``prediction``: M * I + (1 - M) * P (report §3.2.2).

    Works for single images (C, H, W) with a (1, H, W) mask and for batches (N, C, H, W) with (N, 1, H, W).
    """
    if prediction.shape != image.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and image {tuple(image.shape)} must have the same shape")
    mask = mask.to(device=image.device, dtype=image.dtype)
    return mask * image + (1.0 - mask) * prediction.to(device=image.device, dtype=image.dtype)


# ----------------------------------------------------------------------------------------------------
# PNG I/O
# ----------------------------------------------------------------------------------------------------


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


def load_mask_png(path: str | Path, size: int | tuple[int, int] | None = None, invert: bool = False) -> torch.Tensor:
    """Read a mask image (white = valid -> 1, black = hole -> 0) as a ``(1, H, W)`` float tensor.

    Any mode Pillow reads is accepted (1-bit, greyscale, 16-bit, palette, RGB, RGBA -- alpha is
    ignored, luminance decides) and thresholded at 128. A file is refused when more than 1 % of
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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            gray = _to_uint8_gray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read mask image {path}: {error}") from error
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
