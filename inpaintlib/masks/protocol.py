"""The evaluation protocol: hole-ratio buckets (Liu et al., cited in report §3.2), the fixed bucketed mask
set, and which masks each evaluated photo gets -- shared by ``evaluate`` and training's ``metrics.json``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .check import hole_ratio, positive_int
from .shapes import irregular_mask

__all__ = ["BUCKETS", "BUCKET_LABELS", "bucket_label", "bucket_of", "bucket_order", "bucket_sort_key",
           "evaluation_masks", "evaluation_assignment"]

#: Hole-ratio buckets of the Partial-Convolution evaluation protocol (Liu et al., cited in report §3.2).
#: A ratio r belongs to bucket (lo, hi) when lo <= r < hi; the last bucket also includes its upper end.
BUCKETS: list[tuple[float, float]] = [(0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)]

#: Labels of :data:`BUCKETS` in order: ``"0.01-0.1"``, ``"0.1-0.2"``, ...
BUCKET_LABELS: list[str] = [f"{lo:g}-{hi:g}" for lo, hi in BUCKETS]


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
        height, width = positive_int(size[0], "height"), positive_int(size[1], "width")
    else:
        height = width = positive_int(size, "size")
    per_bucket = positive_int(per_bucket, "per_bucket")
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


